"""Scene names and zero-shot prompt templates in the ten RS-M-CLIP languages.

* :data:`LANGUAGES`: the ISO 639-1 codes of RS-M-CLIP's caption languages, English first.
* :data:`SCENE_NAMES`: ``{scene: {language: name}}`` for every scene class of EuroSAT, RESISC45, AID
  and WHU-RS19 (and ``water`` and ``road`` for generated scenes). English names follow the
  published zero-shot class names where there are some (CLIP's EuroSAT and RESISC45 names, which
  RemoteCLIP and CLIP_benchmark use), otherwise the dataset's own folder name in words.
  Translations name what the images show: AID's ``Playground`` is a school sports ground
  (Chinese 操场), RESISC45's ``terrace`` terraced fields, ``snowberg`` a snow-covered mountain.
* :data:`DATASET_CLASSES`: each dataset's class folders, exactly as distributed, in label order,
  mapped to their scene.
* :data:`TEMPLATES`: RemoteCLIP-style prompt templates per language; the first of each is the
  single template ("a satellite photo of {}."). Templates are translated so that the bare scene
  name fits where ``{}`` stands: after "of" in English, "de"/"di" in Portuguese, Spanish and
  Italian; first, as the subject of a caption, in French (no "de"/"d'" elision to get wrong), German,
  Dutch and Russian (nominative, no article or case to agree); before 的 / 의 in Chinese and Korean.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "DATASET_CLASSES",
    "LANGUAGES",
    "Language",
    "PROMPT_SETS",
    "SCENE_NAMES",
    "TEMPLATES",
    "display_name",
    "scene_of",
    "templates",
]

#: RS-M-CLIP's caption languages (ISO 639-1), English first.
LANGUAGES: tuple[str, ...] = ("en", "pt", "es", "fr", "de", "nl", "it", "zh", "ko", "ru")
#: A language code of :data:`LANGUAGES` (the type suites' ``languages`` options are checked against).
Language = Literal[LANGUAGES]  # Literal of the tuple's values

# Scene -> its name in every language, in LANGUAGES order.
_NAMES: dict[str, tuple[str, ...]] = {
    # EuroSAT (CLIP's English names)
    "annual_crop_land": ("annual crop land", "terra de cultivo anual", "tierra de cultivo anual",
                         "terres de cultures annuelles", "Ackerland mit einjährigen Kulturen",
                         "akkerland met eenjarige gewassen", "terreno a colture annuali", "一年生作物耕地",
                         "일년생 작물 경작지", "пашня с однолетними культурами"),
    "brushland": ("brushland or shrubland", "matagal ou vegetação arbustiva", "matorral o monte bajo",
                  "broussailles ou zone arbustive", "Buschland oder Strauchland", "struikgewas of kreupelhout",
                  "boscaglia o macchia arbustiva", "灌木丛或灌木地", "관목지 또는 덤불",
                  "кустарник или заросли кустарника"),
    "highway_or_road": ("highway or road", "rodovia ou estrada", "autopista o carretera", "autoroute ou route",
                        "Autobahn oder Straße", "snelweg of weg", "autostrada o strada", "高速公路或道路",
                        "고속도로 또는 도로", "шоссе или дорога"),
    "industrial_or_commercial_buildings": (
        "industrial buildings or commercial buildings", "edifícios industriais ou comerciais",
        "edificios industriales o comerciales", "bâtiments industriels ou commerciaux",
        "Industriegebäude oder Geschäftsgebäude", "industriële of commerciële gebouwen",
        "edifici industriali o commerciali", "工业建筑或商业建筑", "산업 건물 또는 상업 건물",
        "промышленные или коммерческие здания"),
    "pasture_land": ("pasture land", "pastagem", "pastizal", "pâturage", "Weideland", "weiland", "pascolo", "牧场",
                     "목초지", "пастбище"),
    "permanent_crop_land": ("permanent crop land", "terra de cultivo permanente", "tierra de cultivo permanente",
                            "terres de cultures permanentes", "Land mit Dauerkulturen", "land met blijvende teelten",
                            "terreno a colture permanenti", "多年生作物耕地", "다년생 작물 경작지",
                            "земли многолетних насаждений"),
    "residential_buildings": ("residential buildings or homes or apartments",
                              "edifícios residenciais, casas ou apartamentos",
                              "edificios residenciales, casas o apartamentos",
                              "bâtiments résidentiels, maisons ou appartements", "Wohngebäude, Häuser oder Wohnungen",
                              "woongebouwen, huizen of appartementen", "edifici residenziali, case o appartamenti",
                              "住宅楼、房屋或公寓", "주거용 건물, 주택 또는 아파트", "жилые здания, дома или квартиры"),
    "lake_or_sea": ("lake or sea", "lago ou mar", "lago o mar", "lac ou mer", "See oder Meer", "meer of zee",
                    "lago o mare", "湖泊或海洋", "호수 또는 바다", "озеро или море"),
    # RESISC45 (CLIP's English names), shared with the other sets where they mean the same
    "airplane": ("airplane", "avião", "avión", "avion", "Flugzeug", "vliegtuig", "aereo", "飞机", "비행기", "самолёт"),
    "airport": ("airport", "aeroporto", "aeropuerto", "aéroport", "Flughafen", "luchthaven", "aeroporto", "机场",
                "공항", "аэропорт"),
    "baseball_diamond": ("baseball diamond", "campo de beisebol", "campo de béisbol", "terrain de baseball",
                         "Baseballfeld", "honkbalveld", "campo da baseball", "棒球场", "야구장", "бейсбольное поле"),
    "basketball_court": ("basketball court", "quadra de basquete", "cancha de baloncesto", "terrain de basket-ball",
                         "Basketballplatz", "basketbalveld", "campo da pallacanestro", "篮球场", "농구장",
                         "баскетбольная площадка"),
    "beach": ("beach", "praia", "playa", "plage", "Strand", "strand", "spiaggia", "海滩", "해변", "пляж"),
    "bridge": ("bridge", "ponte", "puente", "pont", "Brücke", "brug", "ponte", "桥梁", "다리", "мост"),
    "chaparral": ("chaparral", "chaparral", "chaparral", "chaparral", "Chaparral", "chaparral", "chaparral",
                  "硬叶灌木林", "차파랄 관목지", "чапараль"),
    "church": ("church", "igreja", "iglesia", "église", "Kirche", "kerk", "chiesa", "教堂", "교회", "церковь"),
    "circular_farmland": ("circular farmland", "terra agrícola circular", "tierra de cultivo circular",
                          "terres agricoles circulaires", "kreisförmiges Ackerland", "cirkelvormige landbouwgrond",
                          "terreno agricolo circolare", "圆形农田", "원형 농경지", "круглые сельскохозяйственные поля"),
    "cloud": ("cloud", "nuvem", "nube", "nuage", "Wolke", "wolk", "nuvola", "云", "구름", "облако"),
    "commercial_area": ("commercial area", "área comercial", "zona comercial", "zone commerciale", "Geschäftsviertel",
                        "winkelgebied", "area commerciale", "商业区", "상업 지역", "коммерческий район"),
    "dense_residential": ("dense residential", "área residencial densa", "zona residencial densa",
                          "zone résidentielle dense", "dichtes Wohngebiet", "dichtbebouwde woonwijk",
                          "zona residenziale densa", "密集住宅区", "고밀도 주거 지역", "плотная жилая застройка"),
    "desert": ("desert", "deserto", "desierto", "désert", "Wüste", "woestijn", "deserto", "沙漠", "사막", "пустыня"),
    "forest": ("forest", "floresta", "bosque", "forêt", "Wald", "bos", "foresta", "森林", "숲", "лес"),
    "freeway": ("freeway", "via expressa", "autopista", "voie rapide", "Schnellstraße", "autosnelweg", "superstrada",
                "高速公路", "고속도로", "автомагистраль"),
    "golf_course": ("golf course", "campo de golfe", "campo de golf", "terrain de golf", "Golfplatz", "golfbaan",
                    "campo da golf", "高尔夫球场", "골프장", "поле для гольфа"),
    "ground_track_field": ("ground track field", "pista de atletismo", "pista de atletismo", "piste d'athlétisme",
                           "Sportplatz mit Laufbahn", "atletiekbaan", "pista di atletica", "田径场", "육상 경기장",
                           "беговая дорожка с полем"),
    "harbor": ("harbor", "porto", "puerto", "port", "Hafen", "haven", "porto", "港口", "항구", "гавань"),
    "industrial_area": ("industrial area", "área industrial", "zona industrial", "zone industrielle", "Industriegebiet",
                        "industriegebied", "zona industriale", "工业区", "산업 지역", "промышленная зона"),
    "intersection": ("intersection", "cruzamento", "intersección", "carrefour", "Kreuzung", "kruispunt", "incrocio",
                     "十字路口", "교차로", "перекрёсток"),
    "island": ("island", "ilha", "isla", "île", "Insel", "eiland", "isola", "岛屿", "섬", "остров"),
    "lake": ("lake", "lago", "lago", "lac", "See", "meer", "lago", "湖泊", "호수", "озеро"),
    "meadow": ("meadow", "prado", "prado", "prairie", "Wiese", "weide", "prato", "草地", "초원", "луг"),
    "medium_residential": ("medium residential", "área residencial de média densidade",
                           "zona residencial de densidad media", "zone résidentielle de densité moyenne",
                           "Wohngebiet mittlerer Dichte", "woonwijk met middelhoge dichtheid",
                           "zona residenziale a media densità", "中密度住宅区", "중밀도 주거 지역",
                           "жилая застройка средней плотности"),
    "mobile_home_park": ("mobile home park", "parque de casas móveis", "parque de casas móviles",
                         "parc de maisons mobiles", "Mobilheimpark", "stacaravanpark", "parco di case mobili",
                         "移动房屋营地", "이동식 주택 단지", "парк передвижных домов"),
    "mountain": ("mountain", "montanha", "montaña", "montagne", "Berg", "berg", "montagna", "山脉", "산", "гора"),
    "overpass": ("overpass", "viaduto", "paso elevado", "passage supérieur", "Überführung", "viaduct", "cavalcavia",
                 "立交桥", "고가도로", "путепровод"),
    "palace": ("palace", "palácio", "palacio", "palais", "Palast", "paleis", "palazzo", "宫殿", "궁전", "дворец"),
    "parking_lot": ("parking lot", "estacionamento", "estacionamiento", "parking", "Parkplatz", "parkeerplaats",
                    "parcheggio", "停车场", "주차장", "парковка"),
    "railway": ("railway", "ferrovia", "vía férrea", "voie ferrée", "Eisenbahnstrecke", "spoorlijn", "ferrovia", "铁路",
                "철도", "железная дорога"),
    "railway_station": ("railway station", "estação ferroviária", "estación de tren", "gare ferroviaire", "Bahnhof",
                        "treinstation", "stazione ferroviaria", "火车站", "기차역", "железнодорожная станция"),
    "rectangular_farmland": ("rectangular farmland", "terra agrícola retangular", "tierra de cultivo rectangular",
                             "terres agricoles rectangulaires", "rechteckiges Ackerland",
                             "rechthoekige landbouwgrond", "terreno agricolo rettangolare", "矩形农田",
                             "직사각형 농경지", "прямоугольные сельскохозяйственные поля"),
    "river": ("river", "rio", "río", "rivière", "Fluss", "rivier", "fiume", "河流", "강", "река"),
    "roundabout": ("roundabout", "rotatória", "rotonda", "rond-point", "Kreisverkehr", "rotonde", "rotatoria", "环岛",
                   "로터리", "круговая развязка"),
    "runway": ("runway", "pista de pouso", "pista de aterrizaje", "piste d'atterrissage", "Start- und Landebahn",
               "startbaan", "pista di atterraggio", "机场跑道", "활주로", "взлётно-посадочная полоса"),
    "sea_ice": ("sea ice", "gelo marinho", "hielo marino", "banquise", "Meereis", "zee-ijs", "ghiaccio marino", "海冰",
                "해빙", "морской лёд"),
    "ship": ("ship", "navio", "barco", "navire", "Schiff", "schip", "nave", "船舶", "선박", "корабль"),
    "snowberg": ("snowberg", "montanha nevada", "montaña nevada", "montagne enneigée", "schneebedeckter Berg",
                 "besneeuwde berg", "montagna innevata", "雪山", "설산", "заснеженная гора"),
    "sparse_residential": ("sparse residential", "área residencial esparsa", "zona residencial dispersa",
                           "zone résidentielle peu dense", "locker bebautes Wohngebiet", "dunbebouwde woonwijk",
                           "zona residenziale sparsa", "稀疏住宅区", "저밀도 주거 지역", "редкая жилая застройка"),
    "stadium": ("stadium", "estádio", "estadio", "stade", "Stadion", "stadion", "stadio", "体育场", "경기장",
                "стадион"),
    "storage_tank": ("storage tank", "tanque de armazenamento", "tanque de almacenamiento", "réservoir de stockage",
                     "Lagertank", "opslagtank", "serbatoio di stoccaggio", "储罐", "저장 탱크",
                     "резервуар для хранения"),
    "tennis_court": ("tennis court", "quadra de tênis", "cancha de tenis", "court de tennis", "Tennisplatz",
                     "tennisbaan", "campo da tennis", "网球场", "테니스장", "теннисный корт"),
    "terrace": ("terrace", "terraços agrícolas", "terrazas de cultivo", "cultures en terrasses", "Terrassenfelder",
                "terrasvormige akkers", "terrazzamenti", "梯田", "계단식 논밭", "террасные поля"),
    "thermal_power_station": ("thermal power station", "usina termelétrica", "central térmica", "centrale thermique",
                              "Wärmekraftwerk", "thermische centrale", "centrale termoelettrica", "火力发电站",
                              "화력 발전소", "тепловая электростанция"),
    "wetland": ("wetland", "área úmida", "humedal", "zone humide", "Feuchtgebiet", "moerasgebied", "zona umida", "湿地",
                "습지", "водно-болотные угодья"),
    # AID and WHU-RS19 (their folder names in words)
    "bare_land": ("bare land", "solo exposto", "suelo desnudo", "sol nu", "vegetationsloser Boden", "kale grond",
                  "terreno nudo", "裸地", "나지", "открытый грунт"),
    "baseball_field": ("baseball field", "campo de beisebol", "campo de béisbol", "terrain de baseball",
                       "Baseballfeld", "honkbalveld", "campo da baseball", "棒球场", "야구장", "бейсбольное поле"),
    "center": ("center", "centro", "centro", "centre", "Zentrum", "centrum", "centro", "中心", "센터", "центр"),
    "farmland": ("farmland", "terra agrícola", "tierra de cultivo", "terres agricoles", "Ackerland", "landbouwgrond",
                 "terreno agricolo", "农田", "농경지", "сельскохозяйственные угодья"),
    "football_field": ("football field", "campo de futebol", "campo de fútbol", "terrain de football", "Fußballplatz",
                       "voetbalveld", "campo da calcio", "足球场", "축구장", "футбольное поле"),
    "park": ("park", "parque", "parque", "parc", "Park", "park", "parco", "公园", "공원", "парк"),
    "playground": ("playground", "campo esportivo", "campo deportivo", "terrain de sport", "Sportplatz", "sportveld",
                   "campo sportivo", "操场", "운동장", "спортивная площадка"),
    "pond": ("pond", "lagoa", "estanque", "étang", "Teich", "vijver", "stagno", "池塘", "연못", "пруд"),
    "port": ("port", "porto", "puerto", "port", "Hafen", "haven", "porto", "港口", "항구", "порт"),
    "residential": ("residential area", "área residencial", "zona residencial", "zone résidentielle", "Wohngebiet",
                    "woonwijk", "zona residenziale", "住宅区", "주거 지역", "жилой район"),
    "resort": ("resort", "estância turística", "complejo turístico", "complexe touristique", "Ferienanlage",
               "vakantieoord", "villaggio turistico", "度假村", "리조트", "курорт"),
    "school": ("school", "escola", "escuela", "école", "Schule", "school", "scuola", "学校", "학교", "школа"),
    "square": ("square", "praça", "plaza", "place", "Platz", "plein", "piazza", "广场", "광장", "площадь"),
    "viaduct": ("viaduct", "viaduto", "viaducto", "viaduc", "Viadukt", "viaduct", "viadotto", "高架桥", "고가교",
                "виадук"),
    # generated scenes
    "water": ("water", "água", "agua", "eau", "Wasser", "water", "acqua", "水域", "수역", "водоём"),
    "road": ("road", "estrada", "carretera", "route", "Straße", "weg", "strada", "道路", "도로", "дорога"),
}

#: ``{scene: {language: name}}`` for every scene of :data:`DATASET_CLASSES` (and generated ones).
SCENE_NAMES: dict[str, dict[str, str]] = {scene: dict(zip(LANGUAGES, names, strict=True))
                                          for scene, names in _NAMES.items()}

_RESISC45 = ("airplane", "airport", "baseball_diamond", "basketball_court", "beach", "bridge", "chaparral", "church",
             "circular_farmland", "cloud", "commercial_area", "dense_residential", "desert", "forest", "freeway",
             "golf_course", "ground_track_field", "harbor", "industrial_area", "intersection", "island", "lake",
             "meadow", "medium_residential", "mobile_home_park", "mountain", "overpass", "palace", "parking_lot",
             "railway", "railway_station", "rectangular_farmland", "river", "roundabout", "runway", "sea_ice", "ship",
             "snowberg", "sparse_residential", "stadium", "storage_tank", "tennis_court", "terrace",
             "thermal_power_station", "wetland")

#: Dataset -> its class folders as distributed (label order) -> scene of :data:`SCENE_NAMES`.
DATASET_CLASSES: dict[str, dict[str, str]] = {
    "eurosat": {
        "AnnualCrop": "annual_crop_land", "Forest": "forest", "HerbaceousVegetation": "brushland",
        "Highway": "highway_or_road", "Industrial": "industrial_or_commercial_buildings", "Pasture": "pasture_land",
        "PermanentCrop": "permanent_crop_land", "Residential": "residential_buildings", "River": "river",
        "SeaLake": "lake_or_sea",
    },
    "resisc45": {name: name for name in _RESISC45},
    "aid": {
        "Airport": "airport", "BareLand": "bare_land", "BaseballField": "baseball_field", "Beach": "beach",
        "Bridge": "bridge", "Center": "center", "Church": "church", "Commercial": "commercial_area",
        "DenseResidential": "dense_residential", "Desert": "desert", "Farmland": "farmland", "Forest": "forest",
        "Industrial": "industrial_area", "Meadow": "meadow", "MediumResidential": "medium_residential",
        "Mountain": "mountain", "Park": "park", "Parking": "parking_lot", "Playground": "playground", "Pond": "pond",
        "Port": "port", "RailwayStation": "railway_station", "Resort": "resort", "River": "river", "School": "school",
        "SparseResidential": "sparse_residential", "Square": "square", "Stadium": "stadium",
        "StorageTanks": "storage_tank", "Viaduct": "viaduct",
    },
    "whu_rs19": {
        "Airport": "airport", "Beach": "beach", "Bridge": "bridge", "Commercial": "commercial_area",
        "Desert": "desert", "Farmland": "farmland", "footballField": "football_field", "Forest": "forest",
        "Industrial": "industrial_area", "Meadow": "meadow", "Mountain": "mountain", "Park": "park",
        "Parking": "parking_lot", "Pond": "pond", "Port": "port", "railwayStation": "railway_station",
        "Residential": "residential", "River": "river", "Viaduct": "viaduct",
    },
}

#: Prompt templates per language, RemoteCLIP's single template first (see the module docstring).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": ("a satellite photo of {}.", "an aerial photo of {}.", "a satellite image of {}.",
           "an aerial image of {}.", "a remote sensing image of {}."),
    "pt": ("uma foto de satélite de {}.", "uma foto aérea de {}.", "uma imagem de satélite de {}.",
           "uma imagem aérea de {}.", "uma imagem de sensoriamento remoto de {}."),
    "es": ("una foto satelital de {}.", "una foto aérea de {}.", "una imagen satelital de {}.",
           "una imagen aérea de {}.", "una imagen de teledetección de {}."),
    "fr": ("{} sur une photo satellite.", "{} sur une photo aérienne.", "{} sur une image satellite.",
           "{} sur une image aérienne.", "{} sur une image de télédétection."),
    "de": ("{} auf einem Satellitenfoto.", "{} auf einem Luftbild.", "{} auf einem Satellitenbild.",
           "{} auf einer Luftaufnahme.", "{} auf einem Fernerkundungsbild."),
    "nl": ("{} op een satellietfoto.", "{} op een luchtfoto.", "{} op een satellietbeeld.",
           "{} op een luchtopname.", "{} op een aardobservatiebeeld."),
    "it": ("una foto satellitare di {}.", "una foto aerea di {}.", "un'immagine satellitare di {}.",
           "un'immagine aerea di {}.", "un'immagine telerilevata di {}."),
    "zh": ("{}的卫星照片。", "{}的航拍照片。", "{}的卫星图像。", "{}的航空图像。", "{}的遥感图像。"),
    "ko": ("{}의 위성 사진.", "{}의 항공 사진.", "{}의 위성 이미지.", "{}의 항공 이미지.", "{}의 원격 탐사 영상."),
    "ru": ("{} на спутниковом снимке.", "{} на аэрофотоснимке.", "{} на спутниковом изображении.",
           "{} на аэроснимке.", "{} на снимке дистанционного зондирования."),
}

#: The prompt sets a suite can use: RemoteCLIP's single template, or all of a language's templates.
PROMPT_SETS: tuple[str, ...] = ("single", "ensemble")


def templates(language: str, prompts: str = "ensemble") -> list[str]:
    """The prompt templates of ``language``: the first only (``"single"``) or all (``"ensemble"``).

    Args:
        language: a code of :data:`LANGUAGES`.
        prompts: ``"single"`` or ``"ensemble"``.
    """
    chosen = TEMPLATES[language]
    return list(chosen[:1] if prompts == "single" else chosen)


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _build_lookup() -> dict[str, str]:
    """Normalised folder name, scene key or English name -> scene (EuroSAT's names only where no other set has them)."""
    lookup: dict[str, str] = {}
    for dataset in ("eurosat", "whu_rs19", "aid", "resisc45"):  # later sets win: "Industrial" is AID's industrial area
        for folder, scene in DATASET_CLASSES[dataset].items():
            lookup[_normalised(folder)] = scene
    for scene, names in SCENE_NAMES.items():
        lookup[_normalised(scene)] = scene
        lookup.setdefault(_normalised(names["en"]), scene)
    return lookup


_LOOKUP = _build_lookup()


def scene_of(folder: str) -> str | None:
    """The scene a class folder of any layout names, or ``None`` when it names none of :data:`SCENE_NAMES`.

    Case, spaces, hyphens and underscores do not matter (``SeaLake``, ``sea_lake``, ``storage-tanks``),
    nor a final plural ``s`` (``roads``).

    Args:
        folder: a class folder name.
    """
    key = _normalised(folder)
    if key in _LOOKUP:
        return _LOOKUP[key]
    return _LOOKUP.get(key[:-1]) if key.endswith("s") else None


def display_name(folder: str) -> str:
    """A class folder name in words, for a class no table names (``mixedUse_zone`` -> ``mixed use zone``).

    Args:
        folder: a class folder name.
    """
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", folder)
    return " ".join(re.split(r"[\s_\-]+", spaced)).strip().lower()
