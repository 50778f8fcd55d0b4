"""Duplicate detection for beneficiary names, tuned for Iraqi names. Pure Python, no database.

In Iraq a person is identified by the name chain: first name, father's name and grandfather's name.
The family or tribe name is often missing or varies. The same name also reaches us in several spellings:

* Arabic script: hamza forms, taa marbuta, alef maqsura, tatweel, diacritics, Persian/Kurdish keyboard letters.
* Compound names written as one word or two: عبد الله / عبدالله, Abd al-Rahman / Abdulrahman.
* Latin transliterations: Mohammed / Muhammad / Mohamed, Hussein / Husayn, Kadhim / Kazem, Al-Jubouri / Jubouri.

``normalize`` folds a name (or a search query) to one comparison form. ``search_key`` stores that form of the
whole chain for substring search. ``compare`` scores two names of people that the service has already blocked
to the same district and birth year: the first and father's names have to agree, the grandfather's name adds
evidence when both records have it, and the family name adds a little. A part missing on one side is neutral.

Token similarity, from strongest to weakest:

1. the same after normalisation (this covers the Latin variant table below): 1.0
2. a known transliteration of a common name (Mohammed ~ محمد): 0.95
3. Latin spellings that sound alike (same phonetic key, e.g. Kadhim ~ Kazem): 0.95
4. Arabic and Latin forms with the same consonant skeleton (a name missing from the table): 0.9
5. anything else: a rapidfuzz ratio, mapped to at most 0.8.

Spelling similarity alone never makes a first or father's name "the same": in Arabic, different names are
often a letter apart (حسن / حسين, محمد / محمود, عبدالحسن / عبدالحسين). So a fuzzy-only match on either of them
keeps the score below the threshold. Brothers' sons share a grandfather, so we stay conservative here.

Changing the tables changes ``search_key``, so stored keys must then be recomputed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import takewhile

from rapidfuzz import fuzz

# =============================================================================================================
# Tables (data)
# =============================================================================================================

#: Arabic letter variants folded to one letter (from the issue, plus Persian/Kurdish keyboard letters).
ARABIC_LETTER_FOLDS: dict[str, str] = {
    "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ٲ": "ا", "ٳ": "ا", "ٵ": "ا",  # alef with hamza, madda, wasla
    "ؤ": "و", "ٶ": "و",                                                # waw with hamza
    "ئ": "ي", "ٸ": "ي",                                                # yeh with hamza
    "ء": "", "ٴ": "",                                                  # a standalone hamza is dropped
    "ة": "ه", "ۃ": "ه",                                                # taa marbuta
    "ى": "ي",                                                          # alef maqsura
    "ی": "ي", "ێ": "ي", "ې": "ي",                                      # Persian / Kurdish yeh
    "ک": "ك", "ڪ": "ك",                                                # Persian keheh
    "ہ": "ه", "ھ": "ه", "ۀ": "ه",                                      # Urdu heh goal (اللہ), Kurdish heh
    "ۆ": "و", "ڕ": "ر", "ڵ": "ل",                                      # Kurdish o, rr, ll
    "\u0640": "",                                                      # tatweel (kashida)
}

#: Word-level Arabic spelling rules. Kurdish ە is a short vowel (dropped, as Arabic spelling does) except at
#: the end of a word, where it stands for ه / ة (ئەحمەد = احمد, فاطمە = فاطمه); a doubled long vowel is one
#: (داوود = داود, Kurdish نوور = نور).
ARABIC_WORD_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"ە$"), "ه"),
    (re.compile(r"ە"), ""),
    (re.compile(r"(و|ي)\1+"), r"\1"),
)

#: Arabic-Indic and Eastern Arabic-Indic (Persian) digits to ASCII.
ARABIC_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")

#: Marks for ayn and hamza in transliterations (Ja'far, ʿAli): removed, so Ja'far = Jafar.
APOSTROPHES = "'’‘`´ʼʻʿʾ"

# Compound names. Arabic: عبد and ابو are joined to the next word, الدين and الله to the previous one.
ARABIC_ARTICLE = "ال"
ARABIC_JOIN_NEXT = ("عبد", "ابو")
ARABIC_JOIN_PREVIOUS = ("الدين", "الله")

# Latin: the same compounds, with their article spelled al-, el-, ul- or assimilated (ar-Rahman, as-Salam, ud-Din).
LATIN_ABD = ("abd", "abdul", "abdel", "abdal", "abdol", "abdoul", "abdil")
LATIN_ABU = ("abu", "abou", "abo")
LATIN_DIN = ("din", "deen", "dine", "eddin", "eddine", "uddin", "uddeen", "addin", "aldin", "eldin", "uldin")
LATIN_ALLAH = ("allah", "alla", "ullah", "ulla", "illah", "ellah")
LATIN_COMPOUND_ARTICLES = ("al", "el", "ul", "il", "ad", "ed", "ud", "ar", "ur", "as", "us", "ash", "at", "az",
                           "an", "adh", "ath")
#: Articles dropped when written as a separate word: Al-Jubouri = Jubouri.
LATIN_ARTICLES = ("al", "el")

#: Single-word Latin compounds, matched before the spelling rules (they need the doubled letters).
#: Abdulaziz, Abdelrahman, Abdurrahman, Abdrahman -> abdal + aziz / rahman (Abdou and Abduh are left alone).
LATIN_ABD_COMPOUND = re.compile(
    r"^abd(?:[aeiou]{0,2}l(?=[a-z]{3})|[aeiou]{0,2}(?=[b-df-hj-np-tv-z]))(?P<core>[a-z]{3,})$")
#: Nuruddin, Nureddine, Nouraldeen -> nur + aldin (Nadine is left alone).
LATIN_DIN_COMPOUND = re.compile(r"^(?P<head>[a-z]{3,}?)(?:[aeiou]{1,2}l?|l)d+(?:i|ee|e)ne?$")
#: Khairullah, Khairallah -> khair + allah (a double l is required: Jamila and Nabila are left alone).
LATIN_ALLAH_COMPOUND = re.compile(r"^(?P<head>[a-z]{3,}?)[aeiou]{1,2}ll[aeiou]h?$")

#: Latin spelling rules, applied to each word until nothing changes.
LATIN_SPELLING_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"ph"), "f"),                     # Mustapha -> mustafa
    (re.compile(r"ou|oo"), "u"),                  # Youssef -> yussef, Noor -> nur
    (re.compile(r"ee"), "i"),                     # Kareem -> karim
    (re.compile(r"ei|[ae]y(?![aeiou])"), "ai"),   # Hussein, Husayn -> husain; Zeinab -> zainab; Hayder
    (re.compile(r"([a-z])\1+"), r"\1"),           # doubled letters: Mohammed -> mohamed, Abbas -> abas
    (re.compile(r"(?<=[a-z]{2})ah$"), "a"),       # final -ah: Fatimah -> fatima, Abdullah -> abdula
)

#: Common Iraqi names: canonical Latin spelling, Arabic form, other Latin spellings.
#: The Latin spellings of one name normalise to one form; the Arabic form links the scripts.
KNOWN_NAMES: tuple[tuple[str, str, str], ...] = (
    ("muhammad", "محمد", "mohammed mohammad mohamed mohamad muhammed muhamad muhamed mohammod"),
    ("ahmad", "أحمد", "ahmed ahmet"),
    ("mahmud", "محمود", "mahmoud mahmood mahmod"),
    ("ali", "علي", "aly alee"),
    ("husain", "حسين", "hussein hussain husayn hussien husein hosein hossein hosain"),
    ("hasan", "حسن", "hassan hasen hassen"),
    ("abbas", "عباس", "abas"),
    ("umar", "عمر", "omar omer umer"),
    ("uthman", "عثمان", "othman osman usman"),
    ("fatima", "فاطمة", "fatimah fatma fatema fatmah fatemah fatemeh"),
    ("khalid", "خالد", "khaled"),
    ("yusuf", "يوسف", "yousef youssef yousif yusif yosef yousuf yussuf yusef"),
    ("ibrahim", "إبراهيم", "ebrahim ibraheem ibrahem"),
    ("ismail", "إسماعيل", "ismael esmail ismaeel ismaiel"),
    ("mustafa", "مصطفى", "mostafa moustafa mustapha mostapha"),
    ("jasim", "جاسم", "jassim jasem jassem"),
    ("qasim", "قاسم", "kasim qassim kassim qasem kassem"),
    ("kazim", "كاظم", "kadhim kathim kazem kadhem kathem"),
    ("karim", "كريم", "kareem karem"),
    ("zainab", "زينب", "zaynab zeinab zenab"),
    ("maryam", "مريم", "mariam meriam mariyam"),
    ("aisha", "عائشة", "aysha ayesha aicha aesha aishah"),
    ("khadija", "خديجة", "khadijah khadeeja khadeejah"),
    ("haidar", "حيدر", "haider hayder heidar haydar heider"),
    ("jafar", "جعفر", "jaafar jafer jaffar"),
    ("sadiq", "صادق", "sadik sadeq sadek"),
    ("salih", "صالح", "saleh"),
    ("usama", "أسامة", "osama ousama usamah osamah"),
    ("nur", "نور", "noor nour"),
    ("yasin", "ياسين", "yaseen yassin yassine"),
    ("hamza", "حمزة", "hamzah hamzeh"),
    ("mahdi", "مهدي", "mehdi mahdy"),
    ("hadi", "هادي", "hady"),
    ("layla", "ليلى", "laila leila leyla"),
    ("huda", "هدى", "hoda houda"),
    ("rasul", "رسول", "rasool rasoul"),
    ("ridha", "رضا", "rida reda redha"),
    ("murtadha", "مرتضى", "murtada mortada mortadha"),
    ("sajjad", "سجاد", "sajad"),
    ("tariq", "طارق", "tarek tareq tarik"),
    ("walid", "وليد", "waleed"),
    ("zaid", "زيد", "zayd zeid"),
    ("saad", "سعد", ""),
    ("said", "سعيد", "saeed saied"),
    ("sara", "سارة", "sarah"),
    ("samir", "سمير", "sameer"),  # Samir and Samer, Amir and Amer sound alike but are different names
    ("samer", "سامر", ""),
    ("amir", "أمير", "ameer"),
    ("amer", "عامر", "aamer"),
    ("abdallah", "عبد الله", "abdullah abdulla abdalla abdellah abdella"),
)

# Consonant classes shared by both scripts (for the phonetic key and the cross-script skeleton).
# ث ذ ز ض ظ are all written th / dh / z in Iraqi transliteration (Kadhim = Kazim = كاظم, Fadhil = فاضل).
LATIN_DIGRAPHS: dict[str, str] = {"kh": "x", "gh": "g", "sh": "c", "ch": "j", "th": "z", "dh": "z", "ck": "k"}
LATIN_CONSONANTS: dict[str, str] = {"q": "k", "c": "k", "v": "f", "p": "b"}
#: Vowel classes of the Latin phonetic key: e is nearly always a kasra (Jassem, Khaled, Saleh).
LATIN_VOWELS: dict[str, str] = {"a": "a", "e": "i", "i": "i", "y": "i", "o": "u", "u": "u", "w": "u"}
ARABIC_CONSONANTS: dict[str, str] = {
    "ب": "b", "پ": "b", "ت": "t", "ط": "t", "ث": "z", "ذ": "z", "ز": "z", "ض": "z", "ظ": "z", "ژ": "z",
    "ج": "j", "چ": "j", "ح": "h", "ه": "h", "خ": "x", "د": "d", "ر": "r", "س": "s", "ص": "s", "ش": "c",
    "غ": "g", "ف": "f", "ڤ": "f", "ق": "k", "ك": "k", "گ": "k", "ل": "l", "م": "m", "ن": "n",
}

# =============================================================================================================
# Scoring constants
# =============================================================================================================

#: compare(a, b).score >= this => probable duplicate. Reached only when the first and father's names agree
#: and nothing contradicts them: a different grandfather (when both have one) keeps the score below.
DUPLICATE_THRESHOLD: float = 0.85

#: (field, label, weight, required): first and father's names matter most, the family name least.
CHAIN: tuple[tuple[str, str, float, bool], ...] = (
    ("first_name", "first name", 0.35, True),
    ("father_name", "father's name", 0.35, True),
    ("grandfather_name", "grandfather's name", 0.20, False),
    ("family_name", "family name", 0.10, False),
)

KNOWN_TRANSLITERATION = 0.95  # Mohammed ~ محمد, via KNOWN_NAMES
SOUNDS_ALIKE = 0.95           # same Latin phonetic key: Kadhim ~ Kazem
SAME_SKELETON = 0.90          # Arabic vs Latin, same consonants, name not in KNOWN_NAMES
FUZZY_FLOOR = 0.70            # a rapidfuzz ratio at or below this counts as a different name
FUZZY_MAX = 0.80              # ... and a ratio of 1.0 on unequal forms maps to this
#: The first and father's names must each be at least this similar, or the score is capped below the threshold.
CORE_AGREEMENT = 0.85
CORE_MISMATCH_CAP = 0.80
#: The column that stores search_key is this long.
SEARCH_KEY_MAX_LENGTH = 600
#: The column that stores blocking_key is this long (each part's code is cut to half of it).
BLOCKING_KEY_MAX_LENGTH = 80
#: Candidates are people whose birth year is within this many years of the registration's (0: the same year,
#: as the district blocks did; widening it flags more pairs, so the planted-variant tests decide).
BIRTH_YEAR_BAND = 0

# =============================================================================================================
# Public interface
# =============================================================================================================


@dataclass(frozen=True)
class PersonName:
    first_name: str
    father_name: str
    grandfather_name: str | None = None
    family_name: str | None = None


@dataclass(frozen=True)
class Match:
    score: float          # 0..1
    reasons: list[str]    # human-readable, one per part of the name chain


@lru_cache(maxsize=8192)
def normalize(text: str) -> str:
    """Fold a name or a search query to its comparison form: space-separated lowercase words. Idempotent.

    Arabic letter variants, diacritics and tatweel are folded; compounds are joined into one word;
    articles written as a separate word are dropped (Al-Jubouri -> juburi, الجبوري -> جبوري);
    Latin spellings follow LATIN_SPELLING_RULES and KNOWN_NAMES (Mohammed, Muhammad -> muhamad).
    """
    result = _normalize_once(text)
    for _ in range(5):  # every rule shortens or settles a word, so this stops after a pass or two
        again = _normalize_once(result)
        if again == result:
            break
        result = again
    return result


def search_key(name: PersonName) -> str:
    """The normalised name chain for ``q`` search, plus the other-script form of each well-known name.

    The service keeps a person when every token of ``normalize(q)`` is a substring of this key, so
    "Muhammad" finds "Mohammed", "احمد" finds "أحمد", and "Ahmed" finds "أحمد" (via KNOWN_NAMES).
    """
    words = [word for field, _, _, _ in CHAIN for word in _words(getattr(name, field))]
    extras = dict.fromkeys(other for word in words if (other := _other_script_form(word)) is not None)
    key = ""
    for word in words + [extra for extra in extras if extra not in words]:
        candidate = f"{key} {word}" if key else word
        if len(candidate) > SEARCH_KEY_MAX_LENGTH:
            break
        key = candidate
    return key


def blocking_key(name: PersonName) -> str:
    """The nationwide block of a person: a script-independent consonant code of the first and father's names.

    Two names that ``compare`` can score as a probable duplicate have the same key (their first and father's
    names must each be the same after normalisation, a known transliteration, sound alike or share the
    consonant skeleton, and each of those keeps the code), so the service compares a registration only with
    the people of its key and birth-year band, indexed, wherever in the country they were registered. The
    code keeps consonant classes only (``Mohammed Ali`` -> ``mhmd l``), the same for أحمد and Ahmed.
    """
    half = BLOCKING_KEY_MAX_LENGTH // 2 - 1
    return " ".join(_part_code(getattr(name, field))[:half] or "-" for field in ("first_name", "father_name"))


def compare(a: PersonName, b: PersonName) -> Match:
    """Score two names of people already blocked to the same district and birth year.

    The score is the weighted mean of the part similarities over the parts both records have;
    a first or father's name that does not clearly agree caps it at CORE_MISMATCH_CAP.
    """
    reasons: list[str] = []
    weighted = total_weight = 0.0
    core: list[float] = []
    for field, label, weight, required in CHAIN:
        raw_a, raw_b = getattr(a, field), getattr(b, field)
        words_a, words_b = _words(raw_a), _words(raw_b)
        if words_a and words_b:
            similarity, verdict = _part_similarity(words_a, words_b)
            reasons.append(f"{label}: {_describe(verdict, similarity, raw_a, raw_b)}")
        elif required:
            similarity = 0.0
            reasons.append(f"{label}: missing")
        else:
            if words_a or words_b:
                reasons.append(f"{label}: on one record only (neutral)")
            continue
        weighted += weight * similarity
        total_weight += weight
        if required:
            core.append(similarity)
    score = weighted / total_weight
    if min(core) < CORE_AGREEMENT and score > CORE_MISMATCH_CAP:
        score = CORE_MISMATCH_CAP
        reasons.append("first and father's names do not both agree: probably another person")
    return Match(score=round(score, 4), reasons=reasons)


# =============================================================================================================
# Normalisation
# =============================================================================================================

_ARABIC_CHAR = "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff"
_ARABIC = re.compile(f"[{_ARABIC_CHAR}]")
_WORD = re.compile(f"[{_ARABIC_CHAR}]+|[^\\W\\d_{_ARABIC_CHAR}]+|\\d+")
_NOT_A_WORD = re.compile(r"[\W_]+")
_WORD_INITIAL_YEH_HAMZA = re.compile(r"(?<!\w)ئ")
_LETTER_FOLDS = str.maketrans(ARABIC_LETTER_FOLDS | {c: "" for c in APOSTROPHES})


def _normalize_once(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    # Arabic words never start with ئ; in Kurdish it only carries a vowel (ئەحمەد), so it is an alef there.
    text = _WORD_INITIAL_YEH_HAMZA.sub("ا", text)
    text = text.translate(_LETTER_FOLDS).translate(ARABIC_DIGITS)
    # Decompose, then drop combining marks: harakat, shadda, sukun, tanween, superscript alef, Latin accents.
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.category(c).startswith("M"))
    text = "".join(c for c in text.casefold() if unicodedata.category(c) != "Cf")  # zero-width marks
    text = _NOT_A_WORD.sub(" ", text)  # punctuation, hyphens (al-Rahman), Arabic comma...
    words = _join_compounds(_WORD.findall(text))  # also splits words at a change of script
    words = [_fold_word(word) for word in words]
    return " ".join(word for word in words if word and word not in LATIN_ARTICLES and word != ARABIC_ARTICLE)


def _join_compounds(words: list[str]) -> list[str]:
    """Join compound names written as two or three words: عبد الله, Abd al-Rahman, Nour ad-Din, Khair Allah."""
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        rest = list(takewhile(partial(_same_script, word), words[i + 1:i + 3]))
        joins_previous = bool(out) and _same_script(out[-1], word)
        if word in ARABIC_JOIN_NEXT and rest:
            skip = 1 if rest[0] == ARABIC_ARTICLE and len(rest) > 1 else 0  # "عبد ال رحمن"
            out.append(word + "".join(rest[:skip + 1]))
            i += 2 + skip
        elif (word in LATIN_ABD or word in LATIN_ABU) and rest:
            skip = 1 if rest[0] in LATIN_COMPOUND_ARTICLES and len(rest) > 1 else 0  # "abd al rahman"
            if word in LATIN_ABD:
                out.append("abdal" + _drop_latin_article(rest[skip]))
            else:
                out.append("abu" + rest[skip])
            i += 2 + skip
        elif joins_previous and (word in ARABIC_JOIN_PREVIOUS or word in LATIN_DIN or word in LATIN_ALLAH):
            out[-1] += _compound_suffix(word)
            i += 1
        elif joins_previous and word in LATIN_COMPOUND_ARTICLES and rest and rest[0] in LATIN_DIN + LATIN_ALLAH:
            out[-1] += _compound_suffix(rest[0])  # "nour al din", "khair al lah"
            i += 2
        else:
            out.append(word)
            i += 1
    return out


def _compound_suffix(word: str) -> str:
    if word in LATIN_DIN:
        return "aldin"
    if word in LATIN_ALLAH:
        return "allah"
    return word  # Arabic الدين / الله


def _drop_latin_article(word: str) -> str:
    """Rahman from al-rahman, written glued after Abd (Abd alrahman); short words such as Ali are kept."""
    for article in ("al", "el", "ul"):
        if word.startswith(article) and len(word) - len(article) >= 3:
            return word[len(article):]
    return word


def _is_arabic(word: str) -> bool:
    return _ARABIC.search(word) is not None


def _same_script(a: str, b: str) -> bool:
    return _is_arabic(a) == _is_arabic(b)


def _fold_word(word: str) -> str:
    if _is_arabic(word):
        return _fold_arabic_word(word)
    return _fold_latin_word(word)


def _fold_arabic_word(word: str) -> str:
    """ARABIC_WORD_RULES, then drop the article from a non-compound word (الجبوري -> جبوري), not from الله."""
    for pattern, replacement in ARABIC_WORD_RULES:
        word = pattern.sub(replacement, word)
    while word.startswith(ARABIC_ARTICLE) and len(word) - len(ARABIC_ARTICLE) >= 3:
        word = word[len(ARABIC_ARTICLE):]
    return word


def _fold_latin_word(word: str) -> str:
    """Canonical compound form, then the spelling rules until stable, then the KNOWN_NAMES variant table."""
    if word in LATIN_ABD:
        word = "abdal"  # a lone "Abdul" (a search query) still finds Abdulrahman
    elif match := LATIN_ABD_COMPOUND.match(word):
        word = "abdal" + match["core"]
    elif match := LATIN_DIN_COMPOUND.match(word):
        word = match["head"] + "aldin"
    elif match := LATIN_ALLAH_COMPOUND.match(word):
        word = match["head"] + "allah"
    word = _apply_spelling_rules(word)
    return _LATIN_CANONICAL.get(word, word)


def _apply_spelling_rules(word: str) -> str:
    previous = None
    while word != previous:
        previous = word
        for pattern, replacement in LATIN_SPELLING_RULES:
            word = pattern.sub(replacement, word)
    return word


def _words(text: str | None) -> list[str]:
    return normalize(text).split() if text else []


def _build_known_names() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Index KNOWN_NAMES: Latin variant -> canonical, canonical -> Arabic, Arabic -> canonical."""
    canonical_of: dict[str, str] = {}
    arabic_of: dict[str, str] = {}
    latin_of: dict[str, str] = {}
    for canonical, arabic, variants in KNOWN_NAMES:
        canonical_form = _single_word(canonical)
        arabic_form = _single_word(arabic)
        for variant in (canonical, *variants.split()):
            form = _single_word(variant)
            if canonical_of.setdefault(form, canonical_form) != canonical_form:
                raise ValueError(f"KNOWN_NAMES: {variant!r} is a spelling of two names")
        if latin_of.setdefault(arabic_form, canonical_form) != canonical_form:
            raise ValueError(f"KNOWN_NAMES: {arabic!r} is listed twice")
        arabic_of[canonical_form] = arabic_form
    return canonical_of, arabic_of, latin_of


def _single_word(text: str) -> str:
    words = normalize(text).split()
    if len(words) != 1:
        raise ValueError(f"KNOWN_NAMES: {text!r} does not normalise to one word")
    return words[0]


_LATIN_CANONICAL: dict[str, str] = {}  # filled just below; normalize() reads it, so build with it empty first
_LATIN_CANONICAL, _ARABIC_OF_LATIN, _LATIN_OF_ARABIC = _build_known_names()
normalize.cache_clear()


def _other_script_form(word: str) -> str | None:
    return _LATIN_OF_ARABIC.get(word) if _is_arabic(word) else _ARABIC_OF_LATIN.get(word)


# =============================================================================================================
# Similarity
# =============================================================================================================

IDENTICAL = "identical"
SAME = "same after normalisation"
KNOWN = "known transliteration"
ALIKE = "sounds alike"
SKELETON = "same consonants in Arabic and Latin script"
SIMILAR = "similar spelling"
DIFFERENT = "different"


def _part_similarity(words_a: list[str], words_b: list[str]) -> tuple[float, str]:
    """Word by word when both have as many words, else the parts as one word each; the weakest verdict wins."""
    if len(words_a) != len(words_b):
        words_a, words_b = ["".join(words_a)], ["".join(words_b)]
    results = [_word_similarity(x, y) for x, y in zip(words_a, words_b, strict=True)]
    score = sum(s for s, _ in results) / len(results)
    return score, min(results, key=lambda result: result[0])[1]


def _word_similarity(x: str, y: str) -> tuple[float, str]:
    if x == y:
        return 1.0, SAME
    x_arabic, y_arabic = _is_arabic(x), _is_arabic(y)
    if x_arabic != y_arabic:
        return _cross_script_similarity(x, y) if x_arabic else _cross_script_similarity(y, x)
    if x in _ARABIC_OF_LATIN and y in _ARABIC_OF_LATIN:  # two different known names: judge their Arabic
        return _word_similarity(_ARABIC_OF_LATIN[x], _ARABIC_OF_LATIN[y])
    ratio = fuzz.ratio(x, y) / 100
    if not x_arabic:
        key_x, key_y = _phonetic_key(x), _phonetic_key(y)
        if key_x == key_y:
            return SOUNDS_ALIKE, ALIKE
        ratio = max(ratio, fuzz.ratio(key_x, key_y) / 100)
    return _fuzzy(ratio)


def _cross_script_similarity(arabic: str, latin: str) -> tuple[float, str]:
    """Through KNOWN_NAMES when either word is listed, else by consonant skeleton."""
    if (known_arabic := _ARABIC_OF_LATIN.get(latin)) is not None:
        score, verdict = _word_similarity(known_arabic, arabic)
    elif (known_latin := _LATIN_OF_ARABIC.get(arabic)) is not None:
        score, verdict = _word_similarity(known_latin, latin)
    else:
        skeleton_a, skeleton_l = _arabic_skeleton(arabic), _latin_skeleton(latin)
        if skeleton_a and skeleton_a == skeleton_l:
            return SAME_SKELETON, SKELETON
        score, verdict = _fuzzy(fuzz.ratio(skeleton_a, skeleton_l) / 100)
        return score * SAME_SKELETON, verdict
    if verdict == SAME:
        return KNOWN_TRANSLITERATION, KNOWN
    return min(score, KNOWN_TRANSLITERATION), verdict


def _fuzzy(ratio: float) -> tuple[float, str]:
    """Map a rapidfuzz ratio of two unequal forms to a similarity below CORE_AGREEMENT."""
    score = FUZZY_MAX * max(0.0, (ratio - FUZZY_FLOOR) / (1 - FUZZY_FLOOR))
    return score, SIMILAR if score >= 0.3 else DIFFERENT


def _latin_consonants(word: str) -> list[str]:
    """A Latin word as sound classes: digraphs first (kh, dh, sh...), then single letters."""
    sounds: list[str] = []
    i = 0
    while i < len(word):
        if (digraph := LATIN_DIGRAPHS.get(word[i:i + 2])) is not None:
            sounds.append(digraph)
            i += 2
        else:
            sounds.append(LATIN_CONSONANTS.get(word[i], word[i]))
            i += 1
    return sounds


def _phonetic_key(word: str) -> str:
    """Latin sound classes with vowels kept as three classes: kadhim, kazem -> kazim; hasan != husain."""
    return _collapse(LATIN_VOWELS.get(s, s) for s in _latin_consonants(word))


def _latin_skeleton(word: str) -> str:
    """Consonants only (a w or y starting the word counts): yusuf -> ysf, ahmad -> hmd."""
    sounds = _latin_consonants(word)
    return _collapse(s for i, s in enumerate(sounds)
                     if s not in LATIN_VOWELS or (i == 0 and s in "wy"))


def _arabic_skeleton(word: str) -> str:
    """Consonants only: long vowels and ain dropped (a leading و / ي counts), final ه (taa marbuta) dropped."""
    if word.endswith("ه"):
        word = word[:-1]
    initial = {"و": "w", "ي": "y"}.get(word[:1])
    if initial:
        word = word[1:]
    return _collapse([initial or "", *(ARABIC_CONSONANTS.get(c, "") for c in word)])


def _word_code(word: str) -> str:
    """A word's consonant classes in either script: a known name by its canonical Latin form, a w or y sound
    dropped everywhere (so Latin spellings that sound alike, and Arabic and Latin forms with one skeleton,
    keep one code)."""
    if _is_arabic(word):
        latin = _LATIN_OF_ARABIC.get(word)
        skeleton = _latin_skeleton(latin) if latin is not None else _arabic_skeleton(word)
    else:
        skeleton = _latin_skeleton(word)
    return skeleton.replace("w", "").replace("y", "")


def _part_code(text: str | None) -> str:
    """The code of a part of the name chain: its words' codes run together (a part is compared word by word,
    or as one word when the two records split it differently)."""
    return _collapse(_word_code(word) for word in _words(text))


def _collapse(sounds: Iterable[str]) -> str:
    """Join sound classes, dropping repeats (shadda is gone from Arabic, doubled letters from Latin)."""
    out: list[str] = []
    for sound in sounds:
        if sound and (not out or out[-1] != sound):
            out.append(sound)
    return "".join(out)


def _describe(verdict: str, similarity: float, raw_a: str, raw_b: str) -> str:
    """E.g. "same after normalisation (أحمد ~ احمد)", "similar spelling, 0.42 (حسن ~ حسين)"."""
    raw_a, raw_b = raw_a.strip(), raw_b.strip()
    if verdict == SAME and raw_a == raw_b:
        return IDENTICAL
    if verdict in (SIMILAR, DIFFERENT):
        return f"{verdict}, {similarity:.2f} ({raw_a} ~ {raw_b})"
    return f"{verdict} ({raw_a} ~ {raw_b})"
