"""The biomedical evaluation registry: one :class:`TaskSpec` per zero-shot classification task.

BMCA-CLIP (Lozano et al., CVPR 2025) is evaluated on 40 tasks: 35 zero-shot classification tasks
from 21 public datasets across cell and molecular biology, dermatology, ophthalmology, pathology,
radiology, surgery and general biology (parasitology), four coarse microscopy tasks of μ-Bench
Perception (domain, modality, sub-modality, stain) and figure-caption retrieval on BioMed-Flickr.
The paper names the families and the μ-Bench tasks; its per-dataset list and prompt templates are
in its supplement, which this module does not copy. The tasks here are the public benchmarks of
those families in their published layouts, with class names in words as the datasets' authors
write them and several templates per task (the pathology tasks use the pathology domain's
CONCH-style synonyms and templates, the surgery tasks the surgery domain's own suites), plus the
``figure_types`` task of this domain's taxonomy.

A task names:

* where its data lives under the suite's data root (``folder``) and how it is read (``layout``,
  one of :data:`LAYOUTS`: ``folder`` per class, ``csv`` of path and label, the pathology domain's
  ``nct_crc`` / ``pcam`` adapters), with the adapter's options (CSV columns, an image folder, a
  file ending; for radiology the MONAI view of a volume and an intensity window);
* its classes in label order, each a label value (the class folder or CSV label) and one or more
  names in words (synonyms are averaged, as CONCH does);
* its prompt templates (each ``{}`` takes a class name) and the metric its benchmark is usually
  reported with;
* or, for a task another domain scores with its own protocol (Cholec80's per-video phase
  accuracy), that domain's suite (``delegate``).

:func:`register_task` adds a task (a lab's own set), :func:`get_task` finds one by name with close
matches on a typo, :func:`list_tasks` lists them, :data:`TaskName` is the typed option that checks a
name when a recipe is loaded. Importing this module imports no image or model library.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from domainclip.core.options import Parser
from domainclip.core.plugins import UnknownNameError
from domainclip.domains.biomed import taxonomy
from domainclip.domains.pathology import labels as pathology_labels
from domainclip.domains.surgery import labels as surgery_labels

__all__ = [
    "FAMILIES",
    "LAYOUTS",
    "Family",
    "Layout",
    "TaskName",
    "TaskSpec",
    "get_task",
    "list_tasks",
    "parse_task_name",
    "register_task",
    "unregister_task",
]

#: Task families, in report order.
FAMILIES: tuple[str, ...] = (
    "pathology", "radiology", "ophthalmology", "dermatology", "surgery", "cell_biology", "general_biology",
    "figure_type",
)
Family = Literal[FAMILIES]  # Literal of the tuple's values
#: How a task's data is read (the adapters of :mod:`~domainclip.domains.biomed.evals`).
LAYOUTS: tuple[str, ...] = ("folder", "csv", "nct_crc", "pcam", "suite")
Layout = Literal[LAYOUTS]  # Literal of the tuple's values


@dataclass(frozen=True)
class TaskSpec:
    """One zero-shot classification task of the registry.

    Args:
        name: the task's name in recipes and results (``ham10000``).
        family: its family (:data:`FAMILIES`).
        title: the benchmark's name as published, for tables and plots.
        classes: ``(label value, (name, synonym, ...))`` per class, in label order; the label value
            is the class folder or CSV label, the names fill the templates.
        templates: prompt templates with one ``{}``; each is scored alone and all together.
        folder: the task's sub-folder of the suite's data root.
        layout: how the data is read (:data:`LAYOUTS`).
        adapter_args: the adapter's options: for ``csv`` ``csv`` (file name in ``folder``),
            ``path_column``, ``label_column``, ``image_dir``, ``suffix``; for ``folder`` ``exclude``
            (file endings left out); for ``pcam`` ``split``;
            for radiology files ``view``, ``plane``, ``window`` (see
            :class:`~domainclip.domains.biomed.datasets.medical_image.MedicalImageLoader`).
        metric: the metric the benchmark is usually reported with (``acc1`` or ``balanced_accuracy``).
        delegate: for ``layout="suite"``, the suite that scores the task with its own protocol.
        expected: what ``folder`` must hold, in words (messages and the skipped-task lines).
        source: the dataset's citation and where its class names come from.
    """

    name: str
    family: str
    title: str
    classes: tuple[tuple[str, tuple[str, ...]], ...]
    templates: tuple[str, ...]
    folder: str
    layout: str = "folder"
    adapter_args: Mapping[str, Any] = field(default_factory=dict)
    metric: str = "acc1"
    delegate: str | None = None
    expected: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise UnknownNameError("task family", self.family, list(FAMILIES))
        if self.layout not in LAYOUTS:
            raise UnknownNameError("task layout", self.layout, list(LAYOUTS))
        if (self.layout == "suite") != (self.delegate is not None):
            raise ValueError(f"task {self.name!r}: a delegate suite goes with layout 'suite' and only with it")
        if len(self.classes) < 2:
            raise ValueError(f"task {self.name!r} needs at least two classes")
        values = [value for value, _ in self.classes]
        if len(set(values)) != len(values):
            raise ValueError(f"task {self.name!r} names a class twice: {values}")
        for value, names in self.classes:
            if isinstance(names, str) or not names:
                raise ValueError(f"task {self.name!r} class {value!r} needs a tuple of names, got {names!r}")
        if not self.templates or any("{}" not in t for t in self.templates):
            raise ValueError(f"task {self.name!r} needs templates, each with one '{{}}'")

    @property
    def labels(self) -> list[str]:
        """The label values (class folders or CSV labels) in label order."""
        return [value for value, _ in self.classes]

    def prompts(self, templates: tuple[str, ...] | None = None) -> dict[str, list[str]]:
        """``{label value: [prompt, ...]}``: every name of a class through every template.

        Args:
            templates: the templates to use (default: the task's own).
        """
        chosen = self.templates if templates is None else templates
        return {value: [t.format(n) for t in chosen for n in names] for value, names in self.classes}


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task to the registry.

    Args:
        spec: the task.

    Raises:
        ValueError: a different task of that name is registered.
    """
    if spec.name in _TASKS and _TASKS[spec.name] != spec:
        raise ValueError(f"task {spec.name!r} is already registered")
    _TASKS[spec.name] = spec
    return spec


def unregister_task(name: str) -> None:
    """Remove a task (a test's or notebook's own); an unknown name is ignored.

    Args:
        name: the task's name.
    """
    _TASKS.pop(name, None)


def get_task(name: str) -> TaskSpec:
    """The task called ``name``.

    Args:
        name: a registered task name.

    Raises:
        UnknownNameError: naming the close matches and the known tasks.
    """
    try:
        return _TASKS[name]
    except KeyError:
        raise UnknownNameError("biomed task", name, list(_TASKS)) from None


def list_tasks(family: str | None = None) -> list[str]:
    """Task names in registry order, optionally of one family.

    Args:
        family: a family of :data:`FAMILIES`, or ``None`` for all.
    """
    return [name for name, spec in _TASKS.items() if family is None or spec.family == family]


def parse_task_name(text: str) -> str:
    """Check a task name given in a recipe or on the command line.

    Args:
        text: the name.

    Raises:
        ValueError: the name is not registered (with close matches).
    """
    if text in _TASKS:
        return text
    close = difflib.get_close_matches(text, list(_TASKS), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(f"unknown biomed task {text!r}{hint}; known: {', '.join(_TASKS)}")


#: A registered task's name, as a typed option (checked when a recipe is loaded).
TaskName = Annotated[str, Parser(parse_task_name, "TASK")]


# ---------------------------------------------------------------------------------------------- templates
XRAY_TEMPLATES = ("{}.", "a chest X-ray showing {}.", "a chest radiograph of {}.", "a frontal chest X-ray with {}.",
                  "this chest X-ray shows {}.")
CT_TEMPLATES = ("{}.", "a CT scan showing {}.", "an axial CT image of {}.", "a computed tomography image of {}.",
                "this CT slice shows {}.")
MRI_TEMPLATES = ("{}.", "a brain MRI showing {}.", "an MR image of {}.", "a magnetic resonance image of {}.",
                 "this brain MRI shows {}.")
KNEE_TEMPLATES = ("{}.", "a knee X-ray showing {}.", "a knee radiograph with {}.",
                  "a plain radiograph of a knee with {}.", "this knee X-ray shows {}.")
OCT_TEMPLATES = ("{}.", "a retinal OCT scan showing {}.", "an optical coherence tomography image of {}.",
                 "an OCT image of a retina with {}.", "this OCT scan shows {}.")
FUNDUS_TEMPLATES = ("{}.", "a fundus photograph showing {}.", "a retinal fundus image of {}.",
                    "a colour fundus photo of an eye with {}.", "this fundus image shows {}.")
ULTRASOUND_TEMPLATES = ("{}.", "a breast ultrasound image showing {}.", "an ultrasound scan of {}.",
                        "a sonogram of the breast with {}.", "this ultrasound image shows {}.")
ENDOSCOPY_TEMPLATES = ("{}.", "an endoscopic image of {}.", "a colonoscopy image showing {}.",
                       "a gastrointestinal endoscopy frame of {}.", "this endoscopy image shows {}.")
DERM_TEMPLATES = ("{}.", "a dermoscopic image of {}.", "a dermoscopy photo showing {}.", "a skin lesion: {}.",
                  "a close-up photo of {} on the skin.")
SKIN_PHOTO_TEMPLATES = ("{}.", "a clinical photo of {}.", "a smartphone photo of a skin lesion showing {}.",
                        "a skin lesion: {}.", "a close-up photo of {} on the skin.")
BLOOD_TEMPLATES = ("{}.", "a peripheral blood smear image of {}.", "a microscopy image of {}.",
                   "a stained blood cell: {}.", "a micrograph of {} in a blood smear.")
FLUORESCENCE_TEMPLATES = ("{}.", "a fluorescence microscopy image of {}.", "an immunofluorescence image showing {}.",
                          "a microscopy image of {}.", "a cell image of {}.")
PAP_TEMPLATES = ("{}.", "a Pap smear image of {}.", "a cervical cytology image showing {}.",
                 "a microscopy image of {}.", "a cytology image of {}.")
MICROBENCH_TEMPLATES = ("{}.", "an image from {}.", "a {} image.", "a microscopy image from {}.", "this image is {}.")


def _c(*entries: tuple[str, str | tuple[str, ...]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Classes from ``(label value, name or names)`` pairs."""
    return tuple((value, (names,) if isinstance(names, str) else tuple(names)) for value, names in entries)


def _folder_expected(spec_folder: str, labels: list[str]) -> str:
    shown = ", ".join(f"{label}/" for label in labels[:5]) + (" ..." if len(labels) > 5 else "")
    return f"{spec_folder}/ holding one folder per class ({shown})"


def _task(name: str, family: str, title: str, classes: tuple, templates: tuple[str, ...], *, folder: str | None = None,
          layout: str = "folder", expected: str = "", **kwargs: Any) -> TaskSpec:
    folder = folder or name
    if not expected and layout == "folder":
        expected = _folder_expected(folder, [value for value, _ in classes])
    return register_task(TaskSpec(name=name, family=family, title=title, classes=classes, templates=templates,
                                  folder=folder, layout=layout, expected=expected, **kwargs))


# ---------------------------------------------------------------------------------------------- pathology
P = pathology_labels
_task("nct_crc", "pathology", "CRC-VAL-HE-7K / NCT-CRC-HE-100K colorectal tissue",
      _c(*((code, P.NCT_CRC_SYNONYMS[code]) for code in P.NCT_CRC_CLASSES)), P.PATCH_TEMPLATES, layout="nct_crc",
      expected="nct_crc/ holding ADI/ BACK/ DEB/ LYM/ MUC/ MUS/ NORM/ STR/ TUM/ (the pathology/nct_crc layout)",
      source="Kather et al., PLoS Med 2019; names and templates: domainclip.domains.pathology.labels")
_task("pcam", "pathology", "PatchCamelyon lymph node metastasis",
      _c(*((c, P.PCAM_SYNONYMS[c]) for c in P.PCAM_CLASSES)), P.PATCH_TEMPLATES, layout="pcam",
      adapter_args={"split": "test"}, metric="acc1",
      expected="pcam/ holding camelyonpatch_level_2_split_test_{x,y}.h5 (the pathology/pcam layout)",
      source="Veeling et al., MICCAI 2018; names and templates: domainclip.domains.pathology.labels")
_task("lc25000_lung", "pathology", "LC25000 lung histopathology",
      _c(("lung_aca", ("lung adenocarcinoma", "adenocarcinoma of the lung")),
         ("lung_n", ("benign lung tissue", "normal lung tissue")),
         ("lung_scc", ("lung squamous cell carcinoma", "squamous cell carcinoma of the lung"))),
      P.PATCH_TEMPLATES, folder="lc25000/lung_image_sets",
      source="Borkowski et al., arXiv:1912.12142 (LC25000), class folders as distributed")
_task("lc25000_colon", "pathology", "LC25000 colon histopathology",
      _c(("colon_aca", ("colon adenocarcinoma", "adenocarcinoma of the colon")),
         ("colon_n", ("benign colonic tissue", "normal colon tissue"))),
      P.PATCH_TEMPLATES, folder="lc25000/colon_image_sets",
      source="Borkowski et al., arXiv:1912.12142 (LC25000), class folders as distributed")
_task("breakhis", "pathology", "BreakHis breast tumour histopathology",
      _c(("benign", ("a benign breast tumour", "benign breast tissue")),
         ("malignant", ("a malignant breast tumour", "breast carcinoma"))),
      P.PATCH_TEMPLATES, folder="breakhis/BreaKHis_v1/histology_slides/breast", metric="balanced_accuracy",
      source="Spanhol et al., IEEE TBME 2016; benign/ and malignant/ as distributed (sub-folders walked)")
_task("mhist", "pathology", "MHIST colorectal polyps",
      _c(("HP", ("a hyperplastic polyp", "hyperplastic polyp tissue")),
         ("SSA", ("a sessile serrated adenoma", "sessile serrated lesion"))),
      P.PATCH_TEMPLATES, layout="csv", metric="balanced_accuracy",
      adapter_args={"csv": "annotations.csv", "path_column": "Image Name", "label_column": "Majority Vote Label",
                    "image_dir": "images"},
      expected="mhist/ holding annotations.csv (Image Name, Majority Vote Label) and images/",
      source="Wei et al., AIME 2021 (MHIST), annotations.csv as distributed")

# ---------------------------------------------------------------------------------------------- radiology
_task("chest_xray_pneumonia", "radiology", "Chest X-ray pneumonia (Kermany et al.)",
      _c(("NORMAL", ("no pneumonia", "normal lungs", "a normal chest")),
         ("PNEUMONIA", ("pneumonia", "lung opacity from pneumonia", "consolidation from pneumonia"))),
      XRAY_TEMPLATES, folder="chest_xray/test", metric="balanced_accuracy",
      source="Kermany et al., Cell 2018 (chest_xray/test/NORMAL, PNEUMONIA)")
_task("covid_radiography", "radiology", "COVID-19 Radiography Database",
      _c(("COVID", ("COVID-19 pneumonia", "COVID-19")), ("Lung_Opacity", ("lung opacity", "non-COVID lung opacity")),
         ("Normal", ("normal lungs", "a normal chest")), ("Viral Pneumonia", ("viral pneumonia",))),
      XRAY_TEMPLATES, folder="COVID-19_Radiography_Dataset", metric="balanced_accuracy",
      source="Chowdhury et al., IEEE Access 2020; Rahman et al., Comput Biol Med 2021 (class folders as distributed)")
_task("rsna_pneumonia", "radiology", "RSNA Pneumonia Detection (DICOM)",
      _c(("0", ("no pneumonia", "normal lungs")), ("1", ("pneumonia", "lung opacity from pneumonia"))),
      XRAY_TEMPLATES, layout="csv", metric="balanced_accuracy",
      adapter_args={"csv": "stage_2_train_labels.csv", "path_column": "patientId", "label_column": "Target",
                    "image_dir": "stage_2_train_images", "suffix": ".dcm"},
      expected="rsna_pneumonia/ holding stage_2_train_labels.csv and stage_2_train_images/<patientId>.dcm",
      source="Shih et al., Radiol AI 2019 (RSNA Pneumonia Detection Challenge files)")
_task("brain_tumor_mri", "radiology", "Brain Tumor MRI",
      _c(("glioma", ("a glioma",)), ("meningioma", ("a meningioma",)), ("notumor", ("no tumour", "a normal brain")),
         ("pituitary", ("a pituitary tumour", "a pituitary adenoma"))),
      MRI_TEMPLATES, folder="brain_tumor_mri/Testing",
      source="Nickparvar, Brain Tumor MRI Dataset (Kaggle, 2021; figshare, SARTAJ and Br35H), Testing/ as distributed")
_task("knee_oa", "radiology", "Knee osteoarthritis severity (Kellgren-Lawrence grade)",
      _c(("0", ("a healthy knee", "no osteoarthritis")), ("1", ("doubtful osteoarthritis",)),
         ("2", ("minimal osteoarthritis",)), ("3", ("moderate osteoarthritis",)), ("4", ("severe osteoarthritis",))),
      KNEE_TEMPLATES, folder="knee_oa/test", metric="balanced_accuracy",
      source="Chen et al., Mendeley Data 2018 (OAI knee X-rays by KL grade, folders 0-4)")
_task("ct_kidney", "radiology", "CT kidney: normal, cyst, tumour, stone",
      _c(("Cyst", ("a kidney cyst", "a renal cyst")), ("Normal", ("a normal kidney",)),
         ("Stone", ("a kidney stone", "nephrolithiasis")), ("Tumor", ("a kidney tumour", "a renal mass"))),
      CT_TEMPLATES, folder="ct_kidney/CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone",
      source="Islam et al., Sci Rep 2022 (class folders as distributed)")
_task("sars_cov_2_ct", "radiology", "SARS-CoV-2 CT scans",
      _c(("COVID", ("COVID-19 pneumonia", "SARS-CoV-2 infection")),
         ("non-COVID", ("no COVID-19", "lungs without SARS-CoV-2 infection"))),
      CT_TEMPLATES, folder="sars_cov_2_ct", metric="balanced_accuracy",
      source="Soares et al., medRxiv 2020 (SARS-CoV-2 CT-scan dataset, COVID/ and non-COVID/ as distributed)")
_task("busi", "radiology", "BUSI breast ultrasound",
      _c(("benign", ("a benign breast lesion", "a benign breast tumour")),
         ("malignant", ("a malignant breast lesion", "breast cancer")), ("normal", ("normal breast tissue",))),
      ULTRASOUND_TEMPLATES, folder="Dataset_BUSI_with_GT", metric="balanced_accuracy",
      adapter_args={"exclude": ("_mask.png", "_mask_1.png", "_mask_2.png")},
      source="Al-Dhabyani et al., Data in Brief 2020 (benign/, malignant/, normal/ as distributed; the "
             "segmentation masks *_mask.png beside the images are left out)")
_task("mosmed_covid_ct", "radiology", "MosMedData COVID-19 chest CT (NIfTI volumes)",
      _c(("CT-0", ("normal lungs", "no signs of viral pneumonia")),
         ("CT-1", ("mild COVID-19 pneumonia", "ground-glass opacities in under a quarter of the lungs")),
         ("CT-2", ("moderate COVID-19 pneumonia",)), ("CT-3", ("severe COVID-19 pneumonia",)),
         ("CT-4", ("critical COVID-19 pneumonia", "consolidation of most of the lungs"))),
      CT_TEMPLATES, folder="mosmed/studies", metric="balanced_accuracy",
      adapter_args={"view": "middle", "plane": "axial", "window": (-1350.0, 150.0)},
      source="Morozov et al., medRxiv 2020 (MosMedData studies/CT-0..CT-4/*.nii.gz); middle axial slice, lung window")

# ---------------------------------------------------------------------------------------------- ophthalmology
_task("oct_kermany", "ophthalmology", "Retinal OCT (Kermany et al.)",
      _c(("CNV", ("choroidal neovascularization",)), ("DME", ("diabetic macular edema",)),
         ("DRUSEN", ("drusen",)), ("NORMAL", ("a normal retina", "a healthy retina"))),
      OCT_TEMPLATES, folder="OCT2017/test",
      source="Kermany et al., Cell 2018 (OCT2017/test/CNV, DME, DRUSEN, NORMAL)")
_task("aptos2019", "ophthalmology", "APTOS 2019 diabetic retinopathy grading",
      _c(("0", ("no diabetic retinopathy", "a healthy retina")), ("1", ("mild diabetic retinopathy",)),
         ("2", ("moderate diabetic retinopathy",)), ("3", ("severe diabetic retinopathy",)),
         ("4", ("proliferative diabetic retinopathy",))),
      FUNDUS_TEMPLATES, layout="csv", metric="balanced_accuracy",
      adapter_args={"csv": "train.csv", "path_column": "id_code", "label_column": "diagnosis",
                    "image_dir": "train_images", "suffix": ".png"},
      expected="aptos2019/ holding train.csv (id_code, diagnosis) and train_images/<id_code>.png",
      source="APTOS 2019 Blindness Detection (Kaggle), train.csv as distributed")
_task("fundus_diseases", "ophthalmology", "Eye diseases in fundus photographs",
      _c(("cataract", ("cataract",)), ("diabetic_retinopathy", ("diabetic retinopathy",)),
         ("glaucoma", ("glaucoma",)), ("normal", ("a normal retina", "a healthy eye"))),
      FUNDUS_TEMPLATES, folder="eye_diseases/dataset",
      source="Doddi, Eye Diseases Classification (Kaggle, 2022; from IDRiD, Ocular Recognition, HRF)")

# ---------------------------------------------------------------------------------------------- dermatology
_task("ham10000", "dermatology", "HAM10000 dermoscopic skin lesions",
      _c(("akiec", ("actinic keratosis", "intraepithelial carcinoma")), ("bcc", ("basal cell carcinoma",)),
         ("bkl", ("benign keratosis", "seborrheic keratosis")), ("df", ("dermatofibroma",)),
         ("mel", ("melanoma",)), ("nv", ("a melanocytic nevus", "a mole")), ("vasc", ("a vascular lesion",))),
      DERM_TEMPLATES, layout="csv", metric="balanced_accuracy",
      adapter_args={"csv": "HAM10000_metadata.csv", "path_column": "image_id", "label_column": "dx",
                    "image_dir": "images", "suffix": ".jpg"},
      expected="ham10000/ holding HAM10000_metadata.csv (image_id, dx) and images/<image_id>.jpg (both parts)",
      source="Tschandl et al., Sci Data 2018 (dx codes of HAM10000_metadata.csv)")
_task("pad_ufes_20", "dermatology", "PAD-UFES-20 smartphone skin lesions",
      _c(("ACK", ("actinic keratosis",)), ("BCC", ("basal cell carcinoma",)), ("MEL", ("melanoma",)),
         ("NEV", ("a nevus", "a mole")), ("SCC", ("squamous cell carcinoma",)), ("SEK", ("seborrheic keratosis",))),
      SKIN_PHOTO_TEMPLATES, layout="csv", metric="balanced_accuracy",
      adapter_args={"csv": "metadata.csv", "path_column": "img_id", "label_column": "diagnostic",
                    "image_dir": "images"},
      expected="pad_ufes_20/ holding metadata.csv (img_id, diagnostic) and images/<img_id>",
      source="Pacheco et al., Data in Brief 2020 (diagnostic codes of metadata.csv)")
_task("isic_skin_cancer", "dermatology", "Skin cancer ISIC (nine classes)",
      _c(("actinic keratosis", ("actinic keratosis",)), ("basal cell carcinoma", ("basal cell carcinoma",)),
         ("dermatofibroma", ("dermatofibroma",)), ("melanoma", ("melanoma",)), ("nevus", ("a nevus", "a mole")),
         ("pigmented benign keratosis", ("pigmented benign keratosis",)),
         ("seborrheic keratosis", ("seborrheic keratosis",)), ("squamous cell carcinoma", ("squamous cell carcinoma",)),
         ("vascular lesion", ("a vascular lesion",))),
      DERM_TEMPLATES, folder="skin_cancer_isic/Test", metric="balanced_accuracy",
      source="Skin Cancer ISIC, The International Skin Imaging Collaboration (Kaggle, 2019), Test/ as distributed")

# ---------------------------------------------------------------------------------------------- surgery
S = surgery_labels
_task("cholec80_phase", "surgery", "Cholec80 phase recognition",
      _c(*((p, (S.CHOLEC80_PHASE_NAMES[p],)) for p in S.CHOLEC80_PHASES)), S.CHOLEC80_TEMPLATES,
      folder="cholec80", layout="suite", delegate="surgery/cholec80_phase",
      expected="cholec80/ holding videos/ and phase_annotations/ (the surgery/cholec80_phase layout)",
      source="Twinanda et al., IEEE TMI 2017; scored by surgery/cholec80_phase (CAMMA protocol)")
_task("autolaparo_phase", "surgery", "AutoLaparo phase recognition",
      _c(*((p, (S.AUTOLAPARO_PHASE_NAMES[p],)) for p in S.AUTOLAPARO_PHASES)), S.AUTOLAPARO_TEMPLATES,
      folder="autolaparo", layout="suite", delegate="surgery/autolaparo_phase",
      expected="autolaparo/ holding videos/ and labels/ (the surgery/autolaparo_phase layout)",
      source="Wang et al., MICCAI 2022; scored by surgery/autolaparo_phase")

_task("kvasir", "surgery", "Kvasir gastrointestinal endoscopy",
      _c(("dyed-lifted-polyps", ("a dyed lifted polyp",)), ("dyed-resection-margins", ("dyed resection margins",)),
         ("esophagitis", ("esophagitis",)), ("normal-cecum", ("a normal cecum",)),
         ("normal-pylorus", ("a normal pylorus",)), ("normal-z-line", ("a normal Z-line",)),
         ("polyps", ("a polyp", "a colonic polyp")), ("ulcerative-colitis", ("ulcerative colitis",))),
      ENDOSCOPY_TEMPLATES, folder="kvasir-dataset-v2",
      source="Pogorelov et al., MMSys 2017 (Kvasir v2, class folders as distributed)")

# ---------------------------------------------------------------------------------------------- cell biology
_task("blood_cells", "cell_biology", "PBC peripheral blood cells (Acevedo et al.)",
      _c(("basophil", ("a basophil",)), ("eosinophil", ("an eosinophil",)), ("erythroblast", ("an erythroblast",)),
         ("ig", ("an immature granulocyte", "a metamyelocyte")), ("lymphocyte", ("a lymphocyte",)),
         ("monocyte", ("a monocyte",)), ("neutrophil", ("a neutrophil",)), ("platelet", ("a platelet",))),
      BLOOD_TEMPLATES, folder="PBC_dataset_normal_DIB",
      source="Acevedo et al., Data in Brief 2020 (class folders as distributed)")
_task("sipakmed", "cell_biology", "SIPaKMeD cervical cells",
      _c(("im_Dyskeratotic", ("a dyskeratotic cell",)), ("im_Koilocytotic", ("a koilocytotic cell", "a koilocyte")),
         ("im_Metaplastic", ("a metaplastic cell",)), ("im_Parabasal", ("a parabasal cell",)),
         ("im_Superficial-Intermediate", ("a superficial-intermediate cell",))),
      PAP_TEMPLATES, folder="sipakmed",
      source="Plissiti et al., ICIP 2018 (class folders as distributed; sub-folders walked)")
_task("hep2_cells", "cell_biology", "HEp-2 cell staining patterns (ICPR 2012)",
      _c(("centromere", ("a centromere staining pattern",)), ("coarse_speckled", ("a coarse speckled pattern",)),
         ("cytoplasmatic", ("a cytoplasmic staining pattern",)), ("fine_speckled", ("a fine speckled pattern",)),
         ("homogeneous", ("a homogeneous staining pattern",)), ("nucleolar", ("a nucleolar staining pattern",))),
      FLUORESCENCE_TEMPLATES, folder="hep2",
      source="Foggia et al., ICPR 2012 HEp-2 contest; one folder per pattern")
_task("microbench_domain", "cell_biology", "μ-Bench Perception: microscopy domain",
      _c(("pathology", ("pathology", "histopathology")), ("biology", ("biology", "cell biology"))),
      MICROBENCH_TEMPLATES, layout="csv", adapter_args={"csv": "labels.csv"},
      expected="microbench_domain/ holding labels.csv (path,label; labels pathology, biology)",
      source="Lozano et al., NeurIPS 2024 (μ-Bench Perception coarse task 'domain', used by BMCA-CLIP)")
_task("microbench_modality", "cell_biology", "μ-Bench Perception: microscopy modality",
      _c(("light microscopy", ("light microscopy", "brightfield microscopy")),
         ("fluorescence microscopy", ("fluorescence microscopy",)), ("electron microscopy", ("electron microscopy",))),
      MICROBENCH_TEMPLATES, layout="csv", adapter_args={"csv": "labels.csv"},
      expected="microbench_modality/ holding labels.csv (path,label; light/fluorescence/electron microscopy)",
      source="Lozano et al., NeurIPS 2024 (μ-Bench Perception coarse task 'modality', used by BMCA-CLIP)")

# ---------------------------------------------------------------------------------------------- general biology
_task("malaria_cells", "general_biology", "NIH malaria cell images (parasitology)",
      _c(("Parasitized", ("a red blood cell infected with malaria parasites", "a Plasmodium-infected cell")),
         ("Uninfected", ("an uninfected red blood cell", "a healthy red blood cell"))),
      BLOOD_TEMPLATES, folder="cell_images",
      source="Rajaraman et al., PeerJ 2018 (cell_images/Parasitized, Uninfected as distributed)")

# ---------------------------------------------------------------------------------------------- figure types
_task("figure_types", "figure_type", "Figure types of the biomed taxonomy",
      _c(*((t.name, t.all_words) for t in taxonomy.FIGURE_TYPES)), taxonomy.TEMPLATES, folder="figure_types",
      expected="figure_types/ holding one folder per taxonomy type (written by 'domainclip prepare biomed synthetic')",
      source="domainclip.domains.biomed.taxonomy (BIOMEDICA's global concepts)")
