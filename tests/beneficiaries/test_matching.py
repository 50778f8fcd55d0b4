"""Duplicate detection for beneficiary names: normalisation, search keys and scoring (pure functions)."""

from __future__ import annotations

import random

import pytest

from services.beneficiaries.matching import (
    DUPLICATE_THRESHOLD,
    KNOWN_NAMES,
    SEARCH_KEY_MAX_LENGTH,
    Match,
    PersonName,
    compare,
    normalize,
    search_key,
)

P = PersonName


def is_duplicate(a: PersonName, b: PersonName) -> bool:
    """Probable duplicate either way round (compare must be symmetric)."""
    forward, backward = compare(a, b), compare(b, a)
    assert forward.score == backward.score
    return forward.score >= DUPLICATE_THRESHOLD


# -- normalize: Arabic script -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("variants", "expected"), [
    (["أحمد", "احمد", "إحمد", "آحمد", "ٱحمد"], "احمد"),                 # alef with hamza / madda / wasla
    (["مؤمن", "مومن"], "مومن"),                                        # ؤ -> و
    (["هانئ", "هاني"], "هاني"),                                        # ئ -> ي
    (["سماء", "سما"], "سما"),                                          # standalone hamza dropped
    (["فاطمة", "فاطمه"], "فاطمه"),                                     # taa marbuta
    (["مصطفى", "مصطفي"], "مصطفي"),                                     # alef maqsura
    (["محـــمد", "مُحَمَّد", "مُحَمَّدٌ", "محمد"], "محمد"),                    # tatweel, harakat, shadda, tanween
    (["رحمٰن", "رحمن"], "رحمن"),                                       # superscript alef
    (["علی", "علي"], "علي"),                                           # Persian yeh
    (["كريم", "کریم"], "كريم"),                                        # Persian keheh and yeh
    (["الجبوري", "جبوري", "ال جبوري"], "جبوري"),                         # article
    (["ئەحمەد", "احمد"], "احمد"),                                      # Kurdish spelling of Ahmad
    (["داوود", "داود", "داؤد"], "داود"),
])
def test_arabic_letter_variants_fold_to_one_form(variants: list[str], expected: str) -> None:
    assert {normalize(v) for v in variants} == {expected}


def test_digits_and_punctuation() -> None:
    assert normalize("٢٠٢٤") == normalize("۲۰۲۴") == "2024"
    assert normalize("  محمد،  علي ") == "محمد علي"
    assert normalize("") == normalize("  -- ") == ""


@pytest.mark.parametrize(("variants", "expected"), [
    (["عبد الله", "عبدالله", "عبد اللہ", "عبدُ اللهِ", "عبد ﷲ"], "عبدالله"),
    (["عبد الرحمن", "عبدالرحمن", "عبد ال رحمن"], "عبدالرحمن"),
    (["نور الدين", "نورالدين"], "نورالدين"),
    (["خير الله", "خيرالله"], "خيرالله"),
    (["أبو بكر", "ابوبكر"], "ابوبكر"),
    (["Abd Allah", "Abdullah", "Abdallah", "Abdulla", "abd-allah", "ABDELLAH"], "abdala"),
    (["Abdul Rahman", "Abdulrahman", "Abd al-Rahman", "Abd ar-Rahman", "Abdurrahman", "Abdelrahman",
      "Abd El Rahman", "Abdel-Rahman"], "abdalrahman"),
    (["Abd al-Amir", "Abdulameer", "Abdul Amir"], "abdalamir"),
    (["Nour al-Din", "Nuruddin", "Nour Eddine", "Nour ad-Din", "Nouraldeen"], "nuraldin"),
    (["Khairullah", "Khair Allah", "Khairallah"], "khairala"),
])
def test_compound_names_are_one_word(variants: list[str], expected: str) -> None:
    assert {normalize(v) for v in variants} == {expected}


# -- normalize: Latin transliterations --------------------------------------------------------------------------

@pytest.mark.parametrize("variants", [
    ["Mohammed", "Muhammad", "Mohamed", "Mohammad", "Muhamad", "MOHAMMED", "Muḥammad"],
    ["Ahmed", "Ahmad"],
    ["Hussein", "Husain", "Hussain", "Husayn", "Hussien"],
    ["Ali", "Aly"],
    ["Omar", "Umar", "Omer"],
    ["Fatima", "Fatimah", "Fatma", "Fatema"],
    ["Khalid", "Khaled"],
    ["Yousef", "Yusuf", "Youssef", "Yousif"],
    ["Kadhim", "Kazim", "Kathim", "Kazem"],
    ["Haider", "Hayder", "Haidar"],
    ["Zainab", "Zeinab", "Zaynab"],
    ["Mustafa", "Mustapha", "Moustafa"],
    ["Ja'far", "Jaafar", "Jafar", "Jaʿfar"],
    ["Noor", "Nour", "Nur"],
    ["Kareem", "Karim"],
    ["Al-Jubouri", "al Jubouri", "El-Jubouri", "Jubouri", "Juburi"],
])
def test_transliteration_variants_fold_to_one_form(variants: list[str]) -> None:
    forms = {normalize(v) for v in variants}
    assert len(forms) == 1, forms


def test_different_names_stay_different() -> None:
    for a, b in [("Hassan", "Hussein"), ("Mohammed", "Mahmoud"), ("Jassim", "Qasim"), ("Saad", "Saeed"),
                 ("Ali", "Alaa"), ("حسن", "حسين"), ("محمد", "محمود"), ("عبدالله", "عبد الاله"), ("Jamila", "Jamal")]:
        assert normalize(a) != normalize(b), (a, b)


NAMES = [
    "أحمد", "إبراهيم", "مُحَمَّد", "عبد اللہ", "فاطمة", "ئەحمەد", "Abd al-Rahman", "Abdou", "Abduh", "Abdali",
    "Abdul Ali", "Saladin", "Nadine", "Mulla", "Khair  al  lah", "abu al-fadl", "al", "ال", "عبد", "Abdul",
    "Nour al Din", "Mohammed Ali Hassan Al-Jubouri", "محمد علي حسن الجبوري", "Name1", "ﷺ", "ﻻ", "Ｍｏｈａｍｍｅｄ",
    "O'Neil-Smith", "Ðorđe", "İbrahim", "Straße", "abd محمد", "محمد abd rahman", "عبد Rahman",
] + [variant for canonical, arabic, variants in KNOWN_NAMES for variant in (canonical, arabic, *variants.split())]


@pytest.mark.parametrize("text", NAMES)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert once == " ".join(once.split())  # single spaces, no padding


def test_normalize_is_idempotent_on_random_text() -> None:
    alphabet = ("ابتثجحخدذرزسشصضطظعغفقكلمنهويةىأإآؤئءـًٌٍَُِّْٰ" "abdeghiklmnorstuyz" "  -'’،٠١٩"
                "ڕڵۆێەیکہ" "AEIOU")
    rng = random.Random(20240601)
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
        once = normalize(text)
        assert normalize(once) == once, (text, once)


# -- search_key -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("stored", "query"), [
    (P("أحمد", "علي", "حسن"), "احمد"),
    (P("احمد", "علي"), "أحمد"),
    (P("Mohammed", "Ali"), "Muhammad"),
    (P("Muhammad", "Ali"), "Mohamed"),
    (P("فاطمة", "حسين"), "فاطمه"),
    (P("عبد الله", "كريم"), "عبدالله"),
    (P("عبدالله", "كريم"), "عبد الله"),
    (P("Abdullah", "Kareem"), "Abd Allah"),
    (P("Abd al-Rahman", "Jassim"), "Abdulrahman"),
    (P("Abdulrahman", "Jassim"), "Abdul"),
    (P("Abdulrahman", "Jassim"), "Rahman"),
    (P("Ali", "Hussein", "Kadhim", "Al-Jubouri"), "Husayn Kazem Jubouri"),
    (P("علي", "حسين", None, "الجبوري"), "جبوري"),
    (P("علي", "حسين", None, "جبوري"), "الجبوري"),
    (P("أحمد", "علي"), "Ahmed"),      # other script, through KNOWN_NAMES
    (P("Fatima", "Hussein"), "فاطمة حسين"),
    (P("Mohammed", "Ali"), "muham"),   # a prefix of the normalised form
])
def test_search_key_contains_every_normalised_query_token(stored: PersonName, query: str) -> None:
    key = search_key(stored)
    tokens = normalize(query).split()
    assert tokens and all(token in key for token in tokens), (key, tokens)


def test_search_key_is_the_normalised_chain_first() -> None:
    assert search_key(P("Mohammed", "Ali", None, "Al-Tamimi")) == "muhamad ali tamimi محمد علي"
    assert search_key(P("حسين", "حسين")).split() == ["حسين", "حسين", "husain"]
    assert search_key(P("Zzz", "Yyy")) == "z y"


def test_search_key_fits_its_column() -> None:
    long = " ".join(["Mohammed Ali"] * 20)
    key = search_key(P(long, long, long, long))
    assert len(key) <= SEARCH_KEY_MAX_LENGTH and key.startswith("muhamad ali")


# -- compare: the must-pass pairs -------------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b"), [
    (P("أحمد", "علي", "حسن"), P("احمد", "علي", "حسن")),
    (P("فاطمة", "حسين"), P("فاطمه", "حسين")),
    (P("عبد الله", "كريم", "جاسم"), P("عبدالله", "كريم", "جاسم")),
    (P("Mohammed", "Ali"), P("Muhammad", "Ali")),
    (P("Mohammed", "Ali"), P("Mohamed", "Ali")),
    (P("Muhammad", "Ali"), P("Mohamed", "Ali")),
])
def test_spelling_variants_with_same_father_are_duplicates(a: PersonName, b: PersonName) -> None:
    assert is_duplicate(a, b)


@pytest.mark.parametrize(("a", "b"), [
    (P("محمد", "علي", "حسن"), P("محمد", "كريم", "جاسم")),
    (P("Mohammed", "Ali", "Hassan"), P("Mohammed", "Kareem", "Jassim")),
    (P("Fatima", "Hussein"), P("Fatima", "Abbas")),
    (P("فاطمة", "حسين"), P("فاطمة", "عباس")),
])
def test_sharing_a_common_first_name_is_not_a_duplicate(a: PersonName, b: PersonName) -> None:
    assert not is_duplicate(a, b)


@pytest.mark.parametrize(("a", "b"), [
    (P("محمد", "علي", "حسن"), P("محمد", "علي")),
    (P("Mohammed", "Ali", "Hassan"), P("Muhammad", "Ali")),
    (P("محمد", "علي", "حسن", "الجبوري"), P("محمد", "علي", "حسن")),
    (P("محمد", "علي", None, "الجبوري"), P("محمد", "علي")),
    (P("محمد", "علي", "حسن", "الجبوري"), P("محمد", "علي", None, "التميمي")),  # the tribe name varies
    (P("محمد", "علي", "حسن", "الجبوري"), P("محمد", "علي", "حسن", "جبوري")),
])
def test_missing_grandfather_or_family_name_is_neutral(a: PersonName, b: PersonName) -> None:
    assert is_duplicate(a, b)


@pytest.mark.parametrize(("a", "b"), [
    (P("محمد", "علي", "حسن"), P("محمد", "كريم", "حسن")),
    (P("Mohammed", "Ali", "Hassan", "Al-Jubouri"), P("Mohammed", "Kareem", "Hassan", "Al-Jubouri")),
    (P("محمد", "حسن", "علي", "الجبوري"), P("محمد", "حسين", "علي", "الجبوري")),        # a letter apart
    (P("محمد", "محمد", "علي", "الجبوري"), P("محمد", "محمود", "علي", "الجبوري")),
    (P("محمد", "عبدالحسن", "علي", "الجبوري"), P("محمد", "عبد الحسين", "علي", "الجبوري")),
    (P("Mohammed", "Hassan", "Ali"), P("Mohammed", "Hussein", "Ali")),
])
def test_different_father_is_not_a_duplicate_even_with_same_grandfather(a: PersonName, b: PersonName) -> None:
    assert not is_duplicate(a, b)


# -- compare: edge cases ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b"), [
    (P("أحمد", "علي", "حسن"), P("محمد", "علي", "حسن")),                      # brothers
    (P("Ahmed", "Ali", "Hassan", "Al-Tamimi"), P("Mohammed", "Ali", "Hassan", "Al-Tamimi")),
    (P("محمد", "علي", "حسن"), P("محمد", "علي", "جاسم")),                      # different grandfather
    (P("محمد", "علي", "حسن", "الجبوري"), P("محمد", "علي", "جاسم", "الجبوري")),
    (P("Samer", "Ali"), P("Samir", "Ali")),                                   # alike, yet different names
    (P("Mahmoud", "Ali"), P("محمد", "علي")),
    (P("Fatima", "Hussein"), P("فاطمة", "حسن")),
    (P("", "علي"), P("", "علي")),                                             # no first name: nothing to go on
    (P("محمد", "علي"), P("محمد", "  ")),
])
def test_not_duplicates(a: PersonName, b: PersonName) -> None:
    assert not is_duplicate(a, b)


@pytest.mark.parametrize(("a", "b"), [
    (P("Zainab", "Kadhim"), P("Zeinab", "Kazem")),
    (P("Haider", "Abd al-Amir", "Jasim"), P("Hayder", "Abdulameer", "Jassem")),
    (P("Yousif", "Ja'far"), P("Youssef", "Jaafar")),
    (P("Majed", "Hashem"), P("Majid", "Hashim")),                             # not in the table: sound alike
    (P("نور الدين", "خير الله"), P("نورالدين", "خيرالله")),
    (P("أحمد", "علي", "حسن"), P("احمد", "علي", "حسين")),                       # grandfather a letter apart
    (P("Mohammed", "Ali", "Hassan"), P("محمد", "علي", "حسن")),                 # Latin and Arabic script
    (P("Abdulrahman", "Thamir"), P("عبد الرحمن", "ثامر")),                     # by consonant skeleton
    (P("مُحَمَّد", "عَلِيّ"), P("محمد", "علي")),
])
def test_duplicates(a: PersonName, b: PersonName) -> None:
    assert is_duplicate(a, b)


def test_score_is_between_zero_and_one_and_identical_is_one() -> None:
    same = P("محمد", "علي", "حسن", "الجبوري")
    assert compare(same, same).score == 1.0
    for a, b in [(same, P("Zzz", "Yyy", "Xxx", "Www")), (same, P("Mohammed", "Ali", "Hassan", "Jubouri"))]:
        assert 0.0 <= compare(a, b).score <= 1.0


def test_more_agreement_scores_higher() -> None:
    base = P("محمد", "علي", "حسن", "الجبوري")
    exact = compare(base, P("محمد", "علي", "حسن", "الجبوري")).score
    close_grandfather = compare(base, P("محمد", "علي", "حسين", "الجبوري")).score
    other_grandfather = compare(base, P("محمد", "علي", "جاسم", "الجبوري")).score
    other_father = compare(base, P("محمد", "كريم", "حسن", "الجبوري")).score
    assert exact > close_grandfather > other_grandfather > other_father


def test_reasons_explain_each_part() -> None:
    match = compare(P("أحمد", "علي", "حسن"), P("احمد", "علي", None, "الجبوري"))
    assert isinstance(match, Match)
    assert match.reasons == [
        "first name: same after normalisation (أحمد ~ احمد)",
        "father's name: identical",
        "grandfather's name: on one record only (neutral)",
        "family name: on one record only (neutral)",
    ]
    different = compare(P("Mohammed", "Ali"), P("Mohammed", "Kareem"))
    assert different.reasons[1].startswith("father's name: different") and "(Ali ~ Kareem)" in different.reasons[1]
    assert "known transliteration (Mohammed ~ محمد)" in compare(P("Mohammed", "Ali"), P("محمد", "علي")).reasons[0]


def test_threshold_is_a_probability_like_cut() -> None:
    assert 0.5 < DUPLICATE_THRESHOLD < 1.0
