"""RSICD-style captions of generated scenes, written by the same templates in English, Portuguese and Spanish.

Every class has a pool of templates; a template is written in each language of :data:`LANGUAGES` and
may require facts (``when``), so a caption never states what the scene does not show (a count of
planes is the number drawn; "no bridge" only when none was drawn). A scene gets five captions drawn
from the templates its facts allow, in a random order, like the five sentences per image of RSICD
and UCM-Captions. Every caption names the scene's class (:data:`CLASS_NAMES`) in its language.

Slots in a template take the scene's facts: integers become number words (``{planes}`` in English,
``{planes[m]}`` or ``{planes[f]}`` for a masculine or feminine noun in Portuguese and Spanish),
colour and size words agree with their noun (``{colour[fp]}``: feminine plural), surroundings
become noun phrases (``{around}``), and ``{of_class}`` is "the lake" / "do lago" / "del lago".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CLASS_NAMES", "LANGUAGES", "TEMPLATES", "Template", "describe", "render"]

#: Languages the templates are written in; English first.
LANGUAGES: tuple[str, ...] = ("en", "pt", "es")

#: Per class and language: the class name, and "of the <class>" as the cloud caption needs it.
CLASS_NAMES: dict[str, dict[str, tuple[str, str]]] = {
    "airport": {"en": ("airport", "the airport"), "pt": ("aeroporto", "do aeroporto"),
                "es": ("aeropuerto", "del aeropuerto")},
    "beach": {"en": ("beach", "the beach"), "pt": ("praia", "da praia"), "es": ("playa", "de la playa")},
    "desert": {"en": ("desert", "the desert"), "pt": ("deserto", "do deserto"), "es": ("desierto", "del desierto")},
    "farmland": {"en": ("farmland", "the farmland"), "pt": ("terra agrícola", "da terra agrícola"),
                 "es": ("tierra de cultivo", "de la tierra de cultivo")},
    "forest": {"en": ("forest", "the forest"), "pt": ("floresta", "da floresta"), "es": ("bosque", "del bosque")},
    "highway": {"en": ("highway", "the highway"), "pt": ("rodovia", "da rodovia"),
                "es": ("autopista", "de la autopista")},
    "industrial": {"en": ("industrial area", "the industrial area"), "pt": ("área industrial", "da área industrial"),
                   "es": ("zona industrial", "de la zona industrial")},
    "lake": {"en": ("lake", "the lake"), "pt": ("lago", "do lago"), "es": ("lago", "del lago")},
    "residential": {"en": ("residential area", "the residential area"),
                    "pt": ("área residencial", "da área residencial"),
                    "es": ("zona residencial", "de la zona residencial")},
    "river": {"en": ("river", "the river"), "pt": ("rio", "do rio"), "es": ("río", "del río")},
}

#: Adjectives in Portuguese and Spanish: masculine and feminine singular, masculine and feminine plural
#: (one form: the same for all).
_ADJECTIVES: dict[str, dict[str, str]] = {
    "red": {"pt": "vermelho/vermelha/vermelhos/vermelhas", "es": "rojo/roja/rojos/rojas"},
    "grey": {"pt": "cinza", "es": "gris/gris/grises/grises"},
    "brown": {"pt": "marrom/marrom/marrons/marrons", "es": "marrón/marrón/marrones/marrones"},
    "white": {"pt": "branco/branca/brancos/brancas", "es": "blanco/blanca/blancos/blancas"},
    "blue": {"pt": "azul/azul/azuis/azuis", "es": "azul/azul/azules/azules"},
    "dark": {"pt": "escuro/escura/escuros/escuras", "es": "oscuro/oscura/oscuros/oscuras"},
    "green": {"pt": "verde/verde/verdes/verdes", "es": "verde/verde/verdes/verdes"},
    "yellow": {"pt": "amarelo/amarela/amarelos/amarelas", "es": "amarillo/amarilla/amarillos/amarillas"},
    "orange": {"pt": "laranja", "es": "naranja"},
    "narrow": {"pt": "estreito/estreita/estreitos/estreitas", "es": "estrecho/estrecha/estrechos/estrechas"},
    "wide": {"pt": "largo/larga/largos/largas", "es": "ancho/ancha/anchos/anchas"},
    "dense": {"pt": "denso/densa/densos/densas", "es": "denso/densa/densos/densas"},
    "medium": {"pt": "de densidade média", "es": "de densidad media"},
    "sparse": {"pt": "esparso/esparsa/esparsos/esparsas", "es": "disperso/dispersa/dispersos/dispersas"},
}
_FORMS = ("ms", "fs", "mp", "fp")
#: Surroundings as noun phrases; directions and sides as adverbial phrases.
_PHRASES: dict[str, dict[str, str]] = {
    "trees": {"en": "green trees", "pt": "árvores verdes", "es": "árboles verdes"},
    "grass": {"en": "green meadows", "pt": "prados verdes", "es": "prados verdes"},
    "fields": {"en": "fields", "pt": "campos", "es": "campos"},
    "bare": {"en": "bare land", "pt": "terreno sem vegetação", "es": "terreno sin vegetación"},
    "buildings": {"en": "buildings", "pt": "edifícios", "es": "edificios"},
    "north-south": {"en": "from north to south", "pt": "de norte a sul", "es": "de norte a sur"},
    "east-west": {"en": "from east to west", "pt": "de leste a oeste", "es": "de este a oeste"},
    "diagonal": {"en": "diagonally", "pt": "na diagonal", "es": "en diagonal"},
    "north": {"en": "to the north", "pt": "ao norte", "es": "al norte"},
    "south": {"en": "to the south", "pt": "ao sul", "es": "al sur"},
    "east": {"en": "to the east", "pt": "a leste", "es": "al este"},
    "west": {"en": "to the west", "pt": "a oeste", "es": "al oeste"},
}
_NUMBERS = {
    "en": "zero one two three four five six seven eight nine ten eleven twelve".split(),
    "pt": ["zero", "um/uma", "dois/duas", "três", "quatro", "cinco", "seis", "sete", "oito", "nove", "dez", "onze",
           "doze"],
    "es": ["cero", "un/una", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez", "once",
           "doce"],
}
_AND = {"en": " and ", "pt": " e ", "es": " y "}


def _adjective(word: str, lang: str) -> str | dict[str, str]:
    if lang == "en":
        return word
    forms = _ADJECTIVES[word][lang].split("/")
    return dict(zip(_FORMS, forms * 4 if len(forms) == 1 else forms))


def _number(n: int, lang: str) -> str | dict[str, str]:
    word = _NUMBERS[lang][n] if n < len(_NUMBERS[lang]) else str(n)
    if lang == "en":
        return word
    masculine, _, feminine = word.partition("/")
    return {"m": masculine, "f": feminine or masculine}


def _join(words: list[Any], lang: str) -> Any:
    """``["green", "yellow", "brown"]`` -> "green, yellow and brown" (per form in Portuguese and Spanish)."""
    def join(parts: list[str]) -> str:
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + _AND[lang] + parts[-1]

    if lang == "en":
        return join(words)
    return {form: join([w[form] for w in words]) for form in _FORMS}


def _slot(value: Any, lang: str) -> Any:
    """A fact as the words a template puts in its slot."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _number(value, lang)
    if isinstance(value, list):
        return _join([_slot(v, lang) for v in value], lang)
    if value in _PHRASES:
        return _PHRASES[value][lang]
    if value in _ADJECTIVES:
        return _adjective(value, lang)
    return value


@dataclass(frozen=True)
class Template:
    """One caption, written in every language of :data:`LANGUAGES`.

    Args:
        texts: language -> ``str.format`` pattern over the scene's facts.
        when: the facts this caption needs (None: any scene of the class).
    """

    texts: Mapping[str, str]
    when: Callable[[Mapping[str, Any]], bool] | None = None

    def applies(self, facts: Mapping[str, Any]) -> bool:
        """Whether the caption is true of a scene with these facts."""
        return self.when is None or bool(self.when(facts))


def _t(en: str, pt: str, es: str, when: Callable[[Mapping[str, Any]], bool] | None = None) -> Template:
    return Template({"en": en, "pt": pt, "es": es}, when)


#: Caption templates per class (every one names the class in each language).
TEMPLATES: dict[str, list[Template]] = {
    "airport": [
        _t("an airport with a long runway.", "um aeroporto com uma pista longa.", "un aeropuerto con una pista larga.",
           lambda f: f["runways"] == 1),
        _t("an airport with {runways} runways.", "um aeroporto com {runways[f]} pistas.",
           "un aeropuerto con {runways[f]} pistas.", lambda f: f["runways"] >= 2),
        _t("two runways of the airport cross each other.", "duas pistas do aeroporto se cruzam.",
           "dos pistas del aeropuerto se cruzan.", lambda f: f["crossing"]),
        _t("two parallel runways of the airport.", "duas pistas paralelas do aeroporto.",
           "dos pistas paralelas del aeropuerto.", lambda f: f["runways"] == 2 and not f["crossing"]),
        _t("{planes} planes are parked at the airport.", "{planes[m]} aviões estão estacionados no aeroporto.",
           "{planes[m]} aviones están estacionados en el aeropuerto.", lambda f: f["planes"] >= 2),
        _t("a plane is parked at the airport.", "um avião está estacionado no aeroporto.",
           "un avión está estacionado en el aeropuerto.", lambda f: f["planes"] == 1),
        _t("there are no planes at the airport.", "não há aviões no aeroporto.", "no hay aviones en el aeropuerto.",
           lambda f: f["planes"] == 0),
        _t("a terminal building stands next to the apron of the airport.",
           "um edifício terminal fica junto à pátio do aeroporto.",
           "un edificio terminal está junto a la plataforma del aeropuerto.", lambda f: f["terminal"]),
        _t("the airport is surrounded by green grass.", "o aeroporto está rodeado de grama verde.",
           "el aeropuerto está rodeado de césped verde."),
        _t("white markings are painted on the airport runway.", "há marcas brancas pintadas na pista do aeroporto.",
           "hay marcas blancas pintadas en la pista del aeropuerto."),
        _t("a taxiway runs parallel to the runway of the airport.",
           "uma pista de taxiamento corre paralela à pista do aeroporto.",
           "una calle de rodaje corre paralela a la pista del aeropuerto.", lambda f: f["taxiway"]),
        _t("an aerial view of an airport.", "uma vista aérea de um aeroporto.", "una vista aérea de un aeropuerto."),
        _t("the main runway of the airport runs {direction}.", "a pista principal do aeroporto se estende {direction}.",
           "la pista principal del aeropuerto se extiende {direction}."),
        _t("an airport with {runways} runways and {planes} planes.",
           "um aeroporto com {runways[f]} pistas e {planes[m]} aviões.",
           "un aeropuerto con {runways[f]} pistas y {planes[m]} aviones.",
           lambda f: f["runways"] >= 2 and f["planes"] >= 2),
        _t("an airport with a long runway and {planes} planes.",
           "um aeroporto com uma pista longa e {planes[m]} aviões.",
           "un aeropuerto con una pista larga y {planes[m]} aviones.",
           lambda f: f["runways"] == 1 and f["planes"] >= 2),
    ],
    "beach": [
        _t("a {sand} beach lies between the sea and {around}.",
           "uma praia de areia {sand[fs]} fica entre o mar e {around}.",
           "una playa de arena {sand[fs]} está entre el mar y {around}."),
        _t("the {colour} sea is next to a long beach.", "o mar {colour[ms]} fica junto a uma longa praia.",
           "el mar {colour[ms]} está junto a una larga playa."),
        _t("white waves break on the beach.", "ondas brancas quebram na praia.", "olas blancas rompen en la playa.",
           lambda f: f["waves"]),
        _t("a beach with {sand} sand and {colour} water.", "uma praia com areia {sand[fs]} e água {colour[fs]}.",
           "una playa con arena {sand[fs]} y agua {colour[fs]}."),
        _t("there are {around} behind the beach.", "há {around} atrás da praia.", "hay {around} detrás de la playa."),
        _t("a long and {width} beach runs along the coast.",
           "uma praia longa e {width[fs]} se estende ao longo da costa.",
           "una playa larga y {width[fs]} se extiende a lo largo de la costa."),
        _t("an aerial view of a beach.", "uma vista aérea de uma praia.", "una vista aérea de una playa."),
        _t("the {colour} sea lies {side} of a {width} beach.",
           "o mar {colour[ms]} fica {side} de uma praia {width[fs]}.",
           "el mar {colour[ms]} está {side} de una playa {width[fs]}."),
    ],
    "desert": [
        _t("a large piece of {colour} desert.", "uma grande extensão de deserto {colour[ms]}.",
           "una gran extensión de desierto {colour[ms]}."),
        _t("there are many rippled dunes in the desert.", "há muitas dunas onduladas no deserto.",
           "hay muchas dunas onduladas en el desierto."),
        _t("some dark rocks are scattered in the desert.", "algumas rochas escuras estão espalhadas pelo deserto.",
           "algunas rocas oscuras están dispersas por el desierto.", lambda f: f["rocks"]),
        _t("there is no vegetation in the desert.", "não há vegetação no deserto.",
           "no hay vegetación en el desierto."),
        _t("a track crosses the desert.", "uma trilha atravessa o deserto.", "un sendero cruza el desierto.",
           lambda f: f["track"]),
        _t("the desert is covered with {colour} sand.", "o deserto está coberto de areia {colour[fs]}.",
           "el desierto está cubierto de arena {colour[fs]}."),
        _t("the dunes of the desert form parallel lines.", "as dunas do deserto formam linhas paralelas.",
           "las dunas del desierto forman líneas paralelas."),
        _t("an aerial view of a desert.", "uma vista aérea de um deserto.", "una vista aérea de un desierto."),
        _t("a {colour} desert with dunes running {direction}.",
           "um deserto {colour[ms]} com dunas que se estendem {direction}.",
           "un desierto {colour[ms]} con dunas que se extienden {direction}."),
    ],
    "farmland": [
        _t("many pieces of farmland with different colors.", "muitas parcelas de terra agrícola com cores diferentes.",
           "muchas parcelas de tierra de cultivo con colores diferentes.", lambda f: len(f["colours"]) >= 2),
        _t("the farmland is divided into {fields} fields.", "a terra agrícola está dividida em {fields[m]} campos.",
           "la tierra de cultivo está dividida en {fields[m]} campos.", lambda f: 2 <= f["fields"] <= 12),
        _t("the farmland is divided into many fields.", "a terra agrícola está dividida em muitos campos.",
           "la tierra de cultivo está dividida en muchos campos.", lambda f: f["fields"] > 12),
        _t("the fields of the farmland are separated by narrow margins.",
           "os campos da terra agrícola são separados por margens estreitas.",
           "los campos de la tierra de cultivo están separados por márgenes estrechos."),
        _t("there are {colours} fields in the farmland.", "há campos {colours[mp]} na terra agrícola.",
           "hay campos {colours[mp]} en la tierra de cultivo."),
        _t("a road passes through the farmland.", "uma estrada atravessa a terra agrícola.",
           "una carretera atraviesa la tierra de cultivo.", lambda f: f["road"]),
        _t("the farmland is made of rectangular fields.", "a terra agrícola é formada por campos retangulares.",
           "la tierra de cultivo está formada por campos rectangulares."),
        _t("crops grow in rows in the farmland.", "as culturas crescem em fileiras na terra agrícola.",
           "los cultivos crecen en hileras en la tierra de cultivo."),
        _t("an aerial view of farmland.", "uma vista aérea de terra agrícola.",
           "una vista aérea de tierra de cultivo."),
        _t("the farmland is divided into {fields} {colours} fields.",
           "a terra agrícola está dividida em {fields[m]} campos {colours[mp]}.",
           "la tierra de cultivo está dividida en {fields[m]} campos {colours[mp]}.", lambda f: 2 <= f["fields"] <= 12),
    ],
    "forest": [
        _t("a dense forest with many green trees.", "uma floresta densa com muitas árvores verdes.",
           "un bosque denso con muchos árboles verdes."),
        _t("the forest is covered by a thick canopy.", "a floresta está coberta por uma copa espessa.",
           "el bosque está cubierto por un dosel espeso."),
        _t("a narrow path goes through the forest.", "um caminho estreito atravessa a floresta.",
           "un camino estrecho atraviesa el bosque.", lambda f: f["path"]),
        _t("there are {clearings} small clearings in the forest.", "há {clearings[f]} pequenas clareiras na floresta.",
           "hay {clearings[m]} pequeños claros en el bosque.", lambda f: f["clearings"] >= 2),
        _t("there is a small clearing in the forest.", "há uma pequena clareira na floresta.",
           "hay un pequeño claro en el bosque.", lambda f: f["clearings"] == 1),
        _t("a large area of forest.", "uma grande área de floresta.", "una gran área de bosque."),
        _t("the trees of the forest are {colour}.", "as árvores da floresta são {colour[fp]}.",
           "los árboles del bosque son {colour[mp]}."),
        _t("the forest covers the whole image.", "a floresta cobre toda a imagem.", "el bosque cubre toda la imagen.",
           lambda f: not f["path"] and f["clearings"] == 0),
        _t("an aerial view of a forest.", "uma vista aérea de uma floresta.", "una vista aérea de un bosque."),
        _t("a large forest of {colour} trees.", "uma grande floresta de árvores {colour[fp]}.",
           "un gran bosque de árboles {colour[mp]}."),
    ],
    "highway": [
        _t("a highway passes through {around}.", "uma rodovia atravessa {around}.",
           "una autopista atraviesa {around}."),
        _t("there are {cars} cars on the highway.", "há {cars[m]} carros na rodovia.",
           "hay {cars[m]} coches en la autopista.",
           lambda f: 2 <= f["cars"] <= 12),
        _t("many cars are driving on the highway.", "muitos carros circulam na rodovia.",
           "muchos coches circulan por la autopista.", lambda f: f["cars"] > 12),
        _t("there is one car on the highway.", "há um carro na rodovia.", "hay un coche en la autopista.",
           lambda f: f["cars"] == 1),
        _t("there are no cars on the highway.", "não há carros na rodovia.", "no hay coches en la autopista.",
           lambda f: f["cars"] == 0),
        _t("another road crosses the highway.", "outra estrada cruza a rodovia.", "otra carretera cruza la autopista.",
           lambda f: f["crossing"]),
        _t("a long highway with two carriageways separated by a median strip.",
           "uma longa rodovia com duas faixas separadas por um canteiro central.",
           "una larga autopista con dos calzadas separadas por una mediana."),
        _t("the highway goes straight across the image.", "a rodovia atravessa a imagem em linha reta.",
           "la autopista cruza la imagen en línea recta.", lambda f: not f["curved"]),
        _t("the highway curves gently across the image.", "a rodovia faz uma curva suave através da imagem.",
           "la autopista se curva suavemente a través de la imagen.", lambda f: f["curved"]),
        _t("the highway is lined with {around} on both sides.", "a rodovia é ladeada por {around} dos dois lados.",
           "la autopista está flanqueada por {around} a ambos lados."),
        _t("an aerial view of a highway.", "uma vista aérea de uma rodovia.", "una vista aérea de una autopista."),
        _t("a highway with {cars} cars runs {direction} through {around}.",
           "uma rodovia com {cars[m]} carros atravessa {around} {direction}.",
           "una autopista con {cars[m]} coches atraviesa {around} {direction}.", lambda f: 2 <= f["cars"] <= 12),
        _t("the highway runs {direction}.", "a rodovia se estende {direction}.",
           "la autopista se extiende {direction}."),
    ],
    "industrial": [
        _t("an industrial area with many large factory buildings.",
           "uma área industrial com muitos edifícios fabris grandes.",
           "una zona industrial con muchos edificios industriales grandes.", lambda f: f["buildings"] >= 4),
        _t("there are large buildings with {colour} roofs in the industrial area.",
           "há grandes edifícios com telhados {colour[mp]} na área industrial.",
           "hay grandes edificios con tejados {colour[mp]} en la zona industrial.", lambda f: f["buildings"] >= 2),
        _t("there are {buildings} large buildings in the industrial area.",
           "há {buildings[m]} grandes edifícios na área industrial.",
           "hay {buildings[m]} grandes edificios en la zona industrial.", lambda f: 2 <= f["buildings"] <= 12),
        _t("{tanks} white storage tanks stand in the industrial area.",
           "{tanks[m]} tanques de armazenamento brancos estão na área industrial.",
           "{tanks[m]} tanques de almacenamiento blancos están en la zona industrial.", lambda f: f["tanks"] >= 2),
        _t("a white storage tank stands in the industrial area.",
           "um tanque de armazenamento branco está na área industrial.",
           "un tanque de almacenamiento blanco está en la zona industrial.", lambda f: f["tanks"] == 1),
        _t("cars are parked in a parking lot of the industrial area.",
           "há carros estacionados em um estacionamento da área industrial.",
           "hay coches aparcados en un aparcamiento de la zona industrial.", lambda f: f["parking"]),
        _t("few trees grow in the industrial area.", "poucas árvores crescem na área industrial.",
           "pocos árboles crecen en la zona industrial."),
        _t("roads connect the buildings of the industrial area.", "estradas ligam os edifícios da área industrial.",
           "carreteras conectan los edificios de la zona industrial."),
        _t("the ground of the industrial area is paved.", "o solo da área industrial está pavimentado.",
           "el suelo de la zona industrial está pavimentado."),
        _t("the industrial area seen from above.", "a área industrial vista de cima.",
           "la zona industrial vista desde arriba."),
        _t("an aerial view of an industrial area.", "uma vista aérea de uma área industrial.",
           "una vista aérea de una zona industrial."),
        _t("there are {buildings} large buildings with {colour} roofs in the industrial area.",
           "há {buildings[m]} grandes edifícios com telhados {colour[mp]} na área industrial.",
           "hay {buildings[m]} grandes edificios con tejados {colour[mp]} en la zona industrial.",
           lambda f: 2 <= f["buildings"] <= 12),
    ],
    "lake": [
        _t("a lake with {colour} water is surrounded by {around}.",
           "um lago de água {colour[fs]} está rodeado por {around}.",
           "un lago de agua {colour[fs]} está rodeado de {around}."),
        _t("there is a large lake next to {around}.", "há um grande lago junto a {around}.",
           "hay un gran lago junto a {around}."),
        _t("the {colour} water of the lake covers most of the image.",
           "a água {colour[fs]} do lago cobre a maior parte da imagem.",
           "el agua {colour[fs]} del lago cubre la mayor parte de la imagen."),
        _t("there are {islands} small islands in the lake.", "há {islands[f]} pequenas ilhas no lago.",
           "hay {islands[f]} pequeñas islas en el lago.", lambda f: f["islands"] >= 2),
        _t("there is a small island in the lake.", "há uma pequena ilha no lago.", "hay una pequeña isla en el lago.",
           lambda f: f["islands"] == 1),
        _t("there are no islands in the lake.", "não há ilhas no lago.", "no hay islas en el lago.",
           lambda f: f["islands"] == 0),
        _t("a lake in the middle of {around}.", "um lago no meio de {around}.", "un lago en medio de {around}."),
        _t("the lake has an irregular shore.", "o lago tem uma margem irregular.",
           "el lago tiene una orilla irregular."),
        _t("an aerial view of a lake.", "uma vista aérea de um lago.", "una vista aérea de un lago."),
        _t("a lake with {colour} water and {islands} small islands is surrounded by {around}.",
           "um lago de água {colour[fs]} com {islands[f]} pequenas ilhas está rodeado por {around}.",
           "un lago de agua {colour[fs]} con {islands[f]} pequeñas islas está rodeado de {around}.",
           lambda f: f["islands"] >= 2),
    ],
    "residential": [
        _t("a {density} residential area with many houses.", "uma área residencial {density[fs]} com muitas casas.",
           "una zona residencial {density[fs]} con muchas casas.", lambda f: f["houses"] > 12),
        _t("many houses with {colour} roofs are arranged neatly in the residential area.",
           "muitas casas com telhados {colour[mp]} estão dispostas de forma ordenada na área residencial.",
           "muchas casas con tejados {colour[mp]} están dispuestas de forma ordenada en la zona residencial.",
           lambda f: f["houses"] > 12),
        _t("some green trees grow among the houses of the residential area.",
           "algumas árvores verdes crescem entre as casas da área residencial.",
           "algunos árboles verdes crecen entre las casas de la zona residencial.", lambda f: f["trees"]),
        _t("there are few trees in the residential area.", "há poucas árvores na área residencial.",
           "hay pocos árboles en la zona residencial.", lambda f: not f["trees"]),
        _t("the residential area has straight streets between the blocks.",
           "a área residencial tem ruas retas entre os quarteirões.",
           "la zona residencial tiene calles rectas entre las manzanas."),
        _t("streets divide the residential area into blocks.", "as ruas dividem a área residencial em quarteirões.",
           "las calles dividen la zona residencial en manzanas."),
        _t("an aerial view of a residential area.", "uma vista aérea de uma área residencial.",
           "una vista aérea de una zona residencial."),
        _t("a {density} residential area of houses with {colour} roofs.",
           "uma área residencial {density[fs]} de casas com telhados {colour[mp]}.",
           "una zona residencial {density[fs]} de casas con tejados {colour[mp]}."),
    ],
    "river": [
        _t("a winding river passes through {around}.", "um rio sinuoso atravessa {around}.",
           "un río sinuoso atraviesa {around}.", lambda f: f["winding"]),
        _t("a straight river passes through {around}.", "um rio reto atravessa {around}.",
           "un río recto atraviesa {around}.", lambda f: not f["winding"]),
        _t("a {width} river with {colour} water.", "um rio {width[ms]} de água {colour[fs]}.",
           "un río {width[ms]} de agua {colour[fs]}."),
        _t("a bridge crosses the river.", "uma ponte atravessa o rio.", "un puente cruza el río.",
           lambda f: f["bridge"]),
        _t("no bridge crosses the river.", "nenhuma ponte atravessa o rio.", "ningún puente cruza el río.",
           lambda f: not f["bridge"]),
        _t("there are {around} on both sides of the river.", "há {around} nas duas margens do rio.",
           "hay {around} a ambos lados del río."),
        _t("the river flows from one side of the image to the other.", "o rio corre de um lado ao outro da imagem.",
           "el río fluye de un lado a otro de la imagen."),
        _t("a long river runs across the image.", "um rio comprido atravessa a imagem.",
           "un largo río atraviesa la imagen."),
        _t("an aerial view of a river.", "uma vista aérea de um rio.", "una vista aérea de un río."),
        _t("a {width} river with {colour} water flows {direction} through {around}.",
           "um rio {width[ms]} de água {colour[fs]} corre {direction} entre {around}.",
           "un río {width[ms]} de agua {colour[fs]} fluye {direction} entre {around}."),
        _t("the river flows {direction}.", "o rio corre {direction}.", "el río fluye {direction}."),
    ],
}
#: Said of a scene with clouds, in place of one of its captions.
CLOUDS = _t("some white clouds cover part of {of_class}.", "algumas nuvens brancas cobrem parte {of_class}.",
            "algunas nubes blancas cubren parte {of_class}.")


def render(template: Template, name: str, facts: Mapping[str, Any], lang: str) -> str:
    """Write ``template`` for a scene of class ``name`` in ``lang``: slots filled, first letter capital."""
    slots = {key: _slot(value, lang) for key, value in facts.items()}
    slots["of_class"] = CLASS_NAMES[name][lang][1]
    text = template.texts[lang].format(**slots)
    return text[:1].upper() + text[1:]


def describe(name: str, facts: Mapping[str, Any], rng: np.random.Generator, *, cloudy: bool = False,
             languages: tuple[str, ...] = LANGUAGES, count: int = 5) -> list[dict[str, str]]:
    """``count`` captions of a scene, each ``{language: sentence}``; distinct while the templates allow.

    Args:
        name: the scene's class.
        facts: what its painter drew.
        rng: draws which templates are used and their order.
        cloudy: the scene has clouds: half of the time one caption says so.
        languages: languages to write (English is always written).
        count: captions per scene.
    """
    pool = [t for t in TEMPLATES[name] if t.applies(facts)]
    order = [pool[i] for i in rng.permutation(len(pool))]
    chosen = [order[i % len(order)] for i in range(count)]
    if cloudy and rng.random() < 0.5:
        chosen[int(rng.integers(count))] = CLOUDS
    wanted = ("en", *(lang for lang in languages if lang != "en"))
    return [{lang: render(t, name, facts, lang) for lang in wanted} for t in chosen]
