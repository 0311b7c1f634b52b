"""What synthetic procedures are made of: phases, tools, steps, narration, captions and their probabilities."""

from __future__ import annotations

from domainclip.domains.surgery.labels import CHOLEC80_PHASES, CHOLEC80_TOOLS

#: The 7 Cholec80 phases, in procedure order (the names used by the Cholec80 phase files).
PHASES: tuple[str, ...] = CHOLEC80_PHASES
#: The 7 Cholec80 tools, in the column order of the Cholec80 tool files.
TOOLS: tuple[str, ...] = CHOLEC80_TOOLS
#: Frames between two tool annotation rows (Cholec80: one row every 25 frames).
TOOL_PERIOD = 25

#: Phase names as a caption writes them.
READABLE_PHASES: dict[str, str] = {
    "Preparation": "preparation",
    "CalotTriangleDissection": "Calot triangle dissection",
    "ClippingCutting": "clipping and cutting",
    "GallbladderDissection": "gallbladder dissection",
    "GallbladderPackaging": "gallbladder packaging",
    "CleaningCoagulation": "cleaning and coagulation",
    "GallbladderRetraction": "gallbladder retraction",
}

#: Probability that each tool (columns in :data:`TOOLS` order) is visible during each phase.
PHASE_TOOL_PROBS: dict[str, tuple[float, ...]] = {
    #                         Grasper Bipolar Hook  Scissors Clipper Irrigator Bag
    "Preparation":             (0.80, 0.04, 0.35, 0.00, 0.00, 0.05, 0.00),
    "CalotTriangleDissection": (0.95, 0.05, 0.90, 0.02, 0.02, 0.03, 0.00),
    "ClippingCutting":         (0.90, 0.03, 0.05, 0.45, 0.80, 0.02, 0.00),
    "GallbladderDissection":   (0.95, 0.10, 0.85, 0.02, 0.01, 0.05, 0.00),
    "GallbladderPackaging":    (0.85, 0.02, 0.03, 0.00, 0.00, 0.02, 0.95),
    "CleaningCoagulation":     (0.55, 0.55, 0.05, 0.01, 0.01, 0.65, 0.10),
    "GallbladderRetraction":   (0.75, 0.05, 0.02, 0.00, 0.00, 0.10, 0.90),
}

#: Relative phase lengths (before random jitter); the two dissections dominate, as in Cholec80.
PHASE_WEIGHTS: tuple[float, ...] = (0.08, 0.27, 0.11, 0.24, 0.09, 0.12, 0.09)
#: Probability that a phase is left out of a procedure (the order of the others is kept).
PHASE_SKIP: tuple[float, ...] = (0.05, 0.0, 0.0, 0.0, 0.05, 0.2, 0.1)
#: Probability that a phase is shortened to about a third of its drawn length.
SHORTEN_RATE = 0.15
#: Probability that a narration slot holds a remark from :data:`FILLER` instead of a phase sentence.
FILLER_RATE = 0.08

#: Surgeon-style narration, per phase: (spoken sentence, caption of the action it names).
NARRATION: dict[str, tuple[tuple[str, str], ...]] = {
    "Preparation": (
        ("We start by inserting the trocars and inspecting the abdominal cavity.",
         "The trocars are inserted and the abdominal cavity is inspected with the laparoscope."),
        ("The camera is in, pneumoperitoneum is established, no adhesions to the gallbladder.",
         "The laparoscope shows the insufflated abdomen and a gallbladder free of adhesions."),
        ("I grasp the fundus of the gallbladder and push it up over the liver.",
         "A grasper holds the gallbladder fundus and pushes it up over the liver."),
        ("Let's have a look at the liver edge and the gallbladder before we begin.",
         "The camera surveys the liver edge and the gallbladder."),
        ("The gallbladder is a bit distended and there is fat covering the infundibulum.",
         "A distended gallbladder with fat covering its infundibulum."),
        ("We retract the fundus cranially to expose the hepatoduodenal region.",
         "The fundus is retracted cranially to expose the hepatoduodenal region."),
        ("The assistant holds the grasper on the fundus while I position the camera.",
         "The assistant's grasper holds the fundus while the camera is positioned."),
        ("Some omental adhesions here, I take them down gently with the grasper.",
         "Omental adhesions are taken down gently with a grasper."),
    ),
    "CalotTriangleDissection": (
        ("Now we open the peritoneum over Calot's triangle with the hook.",
         "The hook opens the peritoneum over Calot's triangle."),
        ("I pull the infundibulum laterally to open up the hepatocystic triangle.",
         "The infundibulum is pulled laterally to open the hepatocystic triangle."),
        ("Careful dissection of the fatty tissue around the cystic duct.",
         "Fatty tissue around the cystic duct is dissected with the hook."),
        ("Here you can see the cystic artery running up towards the gallbladder.",
         "The cystic artery is seen running up to the gallbladder."),
        ("We clear the lower part of the gallbladder from the liver bed for the critical view of safety.",
         "The lower gallbladder is cleared from the liver bed for the critical view of safety."),
        ("Short bursts of coagulation with the hook, staying close to the gallbladder.",
         "The hook coagulates in short bursts close to the gallbladder, raising smoke."),
        ("Both structures entering the gallbladder are now clearly identified.",
         "The cystic duct and the cystic artery entering the gallbladder are exposed."),
        ("We dissect the posterior peritoneal leaf to free the cystic duct.",
         "The posterior peritoneal leaf is dissected to free the cystic duct."),
    ),
    "ClippingCutting": (
        ("Now we place the clips on the cystic artery, two on the patient side.",
         "Two clips are placed on the patient side of the cystic artery."),
        ("The clip applier goes around the cystic duct and we fire the first clip.",
         "The clip applier closes around the cystic duct and fires a clip."),
        ("One more clip on the gallbladder side before we divide it.",
         "Another clip is applied on the gallbladder side."),
        ("We cut the cystic artery between the clips with the scissors.",
         "Scissors cut the cystic artery between the clips."),
        ("Now the cystic duct is divided, the clips look secure.",
         "The divided cystic duct with secure clips."),
        ("Check that the clips are fully across the duct before cutting.",
         "The clips are checked across the cystic duct before cutting."),
        ("I put a third clip on the duct because it is quite wide.",
         "A third clip is placed on a wide cystic duct."),
        ("Scissors in, and we transect the cystic duct.",
         "Scissors transect the clipped cystic duct."),
    ),
    "GallbladderDissection": (
        ("Now we dissect the gallbladder off the liver bed with the hook.",
         "The hook dissects the gallbladder off the liver bed."),
        ("Keep the plane between the gallbladder and the liver, staying on the gallbladder wall.",
         "Dissection follows the plane between the gallbladder wall and the liver."),
        ("I lift the gallbladder up and work from the infundibulum towards the fundus.",
         "The gallbladder is lifted and dissected from the infundibulum towards the fundus."),
        ("A little bleeding from the liver bed, we coagulate it.",
         "Bleeding from the liver bed is coagulated."),
        ("Traction and countertraction with the grasper helps to find the plane.",
         "The grasper pulls on the gallbladder to open the dissection plane."),
        ("We are almost at the fundus, the gallbladder is nearly free.",
         "The gallbladder is nearly free, only the fundus remains attached."),
        ("Careful not to perforate the gallbladder here, the wall is thin.",
         "Careful dissection along the thin gallbladder wall."),
        ("The last attachments at the fundus are divided and the gallbladder is free.",
         "The last fundal attachments are divided and the gallbladder is detached."),
    ),
    "GallbladderPackaging": (
        ("Now we introduce the specimen bag through the umbilical port.",
         "A specimen bag is introduced through the umbilical port."),
        ("The bag is opened and we place the gallbladder inside.",
         "The gallbladder is placed inside the opened specimen bag."),
        ("I push the gallbladder into the bag with the grasper.",
         "A grasper pushes the gallbladder into the specimen bag."),
        ("Make sure the whole gallbladder, including any stones, is in the bag.",
         "The whole gallbladder and its stones are put in the bag."),
        ("We close the bag by pulling on the string.",
         "The specimen bag is closed by pulling its string."),
        ("The specimen bag is placed above the liver for now.",
         "The closed specimen bag rests above the liver."),
        ("Unfold the bag completely before putting the specimen in.",
         "The specimen bag is unfolded completely."),
        ("The gallbladder is packed and the bag is closed.",
         "The gallbladder is packed in a closed specimen bag."),
    ),
    "CleaningCoagulation": (
        ("Now we irrigate the gallbladder bed and aspirate the fluid.",
         "The irrigator washes the gallbladder bed and aspirates the fluid."),
        ("Let's check the liver bed for bleeding and bile leakage.",
         "The liver bed is inspected for bleeding and bile leakage."),
        ("A small oozing point here, I coagulate it with the bipolar.",
         "The bipolar forceps coagulate an oozing point in the liver bed."),
        ("We wash the subhepatic space with saline until the fluid is clear.",
         "The subhepatic space is irrigated with saline until the fluid is clear."),
        ("The clips on the cystic duct and artery are still in place.",
         "The clips on the cystic duct and artery are checked."),
        ("Suction of the remaining fluid from Morison's pouch.",
         "Remaining fluid is aspirated from Morison's pouch."),
        ("Another look at the liver bed, hemostasis looks good.",
         "The liver bed shows good hemostasis."),
        ("We irrigate once more and aspirate the blood clots.",
         "Blood clots are irrigated and aspirated."),
    ),
    "GallbladderRetraction": (
        ("Now we retrieve the specimen bag through the umbilical port.",
         "The specimen bag is retrieved through the umbilical port."),
        ("The grasper holds the string of the bag and we pull it out.",
         "A grasper holds the bag string and pulls the bag out."),
        ("We extract the gallbladder in the bag under vision.",
         "The bagged gallbladder is extracted under vision."),
        ("The bag comes out through the port site, we may need to enlarge the incision.",
         "The specimen bag is pulled through the port site."),
        ("Removing the bag with the gallbladder inside, it comes out intact.",
         "The bag with the gallbladder comes out intact."),
        ("The specimen is out, we remove the trocars under vision.",
         "The trocars are removed under vision after the specimen is out."),
        ("Final look at the operative field before desufflation.",
         "A final view of the operative field before desufflation."),
        ("The trocars are removed and the pneumoperitoneum is released.",
         "The trocars are removed and the pneumoperitoneum is released."),
    ),
}

#: Remarks SurgLaVi's text filter drops: (sentence, is_descriptive, is_surgical_content).
FILLER: tuple[tuple[str, bool, bool], ...] = (
    ("Good morning everyone, thank you for joining this session.", False, False),
    ("Please subscribe to our channel for more surgical videos.", False, False),
    ("This video is for educational purposes only.", False, False),
    ("Can we have a bit more light, please?", False, True),
    ("Suction, please.", False, True),
    ("Alright, let's move on.", False, True),
)

#: Ordered steps of each phase: (step name, caption). A procedure uses an ordered subset of 2-3.
STEPS: dict[str, tuple[tuple[str, str], ...]] = {
    "Preparation": (
        ("insert trocars", "The trocars are inserted and the abdominal cavity is inspected."),
        ("expose gallbladder", "The gallbladder fundus is grasped and retracted over the liver."),
        ("release adhesions", "Omental adhesions around the gallbladder are released."),
    ),
    "CalotTriangleDissection": (
        ("dissect peritoneum", "The peritoneum over Calot's triangle is opened with the hook."),
        ("expose cystic duct", "The cystic duct is dissected free of fat."),
        ("expose cystic artery", "The cystic artery is dissected and identified."),
        ("critical view of safety", "The critical view of safety is obtained."),
    ),
    "ClippingCutting": (
        ("clip cystic artery", "Clips are applied to the cystic artery."),
        ("clip cystic duct", "Clips are applied to the cystic duct."),
        ("cut cystic artery and duct", "The cystic artery and duct are divided between the clips with scissors."),
    ),
    "GallbladderDissection": (
        ("lift gallbladder neck", "The gallbladder neck is lifted from the liver bed."),
        ("dissect liver bed", "The gallbladder is dissected from the liver bed with the hook."),
        ("free fundus", "The fundus is freed and the gallbladder is detached from the liver."),
    ),
    "GallbladderPackaging": (
        ("open specimen bag", "The specimen bag is introduced and opened."),
        ("insert gallbladder", "The gallbladder is placed into the specimen bag."),
        ("close specimen bag", "The specimen bag is closed with its string."),
    ),
    "CleaningCoagulation": (
        ("irrigate and aspirate", "The operative field is irrigated and the fluid aspirated."),
        ("coagulate liver bed", "Bleeding points in the liver bed are coagulated."),
        ("check clips", "The clips and the liver bed are inspected for bleeding and bile leaks."),
    ),
    "GallbladderRetraction": (
        ("grasp bag", "The specimen bag is grasped at its string."),
        ("extract specimen", "The specimen bag is extracted through the umbilical port."),
        ("remove trocars", "The trocars are removed under vision."),
    ),
}

#: Phase-level captions (one is drawn per phase occurrence).
PHASE_CAPTIONS: dict[str, tuple[str, ...]] = {
    "Preparation": (
        "Preparation: the trocars are placed, the abdomen is inspected and the gallbladder is exposed.",
        "The laparoscope is introduced and the gallbladder fundus is retracted over the liver.",
    ),
    "CalotTriangleDissection": (
        "Calot triangle dissection: the hepatocystic triangle is opened to expose the cystic duct and artery.",
        "Dissection of the fat and peritoneum of Calot's triangle with the hook until the critical view of safety.",
    ),
    "ClippingCutting": (
        "Clipping and cutting: the cystic artery and cystic duct are clipped and divided.",
        "Clips are applied to the cystic duct and artery, which are then cut with scissors.",
    ),
    "GallbladderDissection": (
        "Gallbladder dissection: the gallbladder is separated from the liver bed with the hook.",
        "The gallbladder is lifted and dissected off the liver from the neck to the fundus.",
    ),
    "GallbladderPackaging": (
        "Gallbladder packaging: the free gallbladder is placed in a specimen bag.",
        "A specimen bag is opened and the gallbladder is packed into it.",
    ),
    "CleaningCoagulation": (
        "Cleaning and coagulation: the liver bed is irrigated, aspirated and coagulated.",
        "The operative field is washed with saline and bleeding points are coagulated.",
    ),
    "GallbladderRetraction": (
        "Gallbladder retraction: the specimen bag is pulled out through a port.",
        "The bagged gallbladder is extracted and the trocars are removed.",
    ),
}

#: Columns of ``levels.csv`` (the flags are SurgLaVi's: 1 = kept by its text filter).
LEVELS_CSV_FIELDS: tuple[str, ...] = (
    "video_id", "start", "end", "level", "text", "is_descriptive", "is_surgical_content",
)
#: The levels of ``levels.csv``, finest first.
LEVELS = ("task", "step", "phase")
