"""Generate the small NER sample that ner-export ships for its demo and tests.

The sentences are synthetic: templates written for this project, filled from name lists of invented
organisations, common first and last names from many languages, real place names and generic
"miscellaneous" entities (nationalities, events, products). Nothing is copied from CoNLL-2003 or any
other corpus. Output is deterministic: run `python finetune/sample/generate.py` to rewrite
train.txt, dev.txt and test.txt beside this file. Tokens follow newswire conventions (punctuation and
possessive 's are separate tokens); tags are IOB2.
"""

from __future__ import annotations

import random
from pathlib import Path

FIRST = """Maria José Ahmed Olga Kenji Aisha Pierre Zoë Liam Ingrid Tomás Mei Rahul Fatima Lars Chloé
Dmitri Amara Hiroshi Sofia Mateo Anika Kwame Elena Yusuf Nadia Oscar Priya Jonas Leila Marco Hana
Samuel Ewa Diego Nora Tariq Greta Felipe Yara Ivan Astrid Kofi Lucía Emil Sana Bruno Ines""".split()
LAST = """Lopez Müller Watanabe Okafor Dvořák Petrova Haddad Lindqvist Moreau Rossi Tanaka Khan Novak
Silva Jensen Kowalski Mensah Ivanova Garcia Nakamura Fischer Costa Osei Berg Schmidt Duarte Larsen
Sato Hussain Kovač Romero Nilsson Abebe Fontaine Keller Yilmaz Marsh Brennan Quispe Andersson""".split()
ORGS = """Northwind Logistics|Helios Energy|Bank of Lisbon|Osaka Blue|Lyon United|Atlas Mining Group|
Crescent Airways|Meridian Bank|Polaris Motors|Harbor Pharma|Greenfield University|Summit Telecom|
Riverside Rovers|Orion Capital|Blue Ridge Foods|National Weather Agency|Cobalt Systems|
Redwood Insurance|Silverline Rail|Aurora Media|Federal Reserve Board|World Health Council|
Eastern Shipping Company|Union of Dock Workers|Kestrel Analytics|Maple Leaf Steel|Vega Robotics|
Sapphire Hotels|Central Statistics Office|Iron Bridge FC|Tidewater Chemicals|Granite Partners|
Lumen Labs|Pacific Grain Board|Starling Post|Boreal Forest Products|Quantum Ledger|Coral Coast Tourism|
Highland Distillers|Ministry of Finance|Delta Harbour Authority|Nova Pictures""".replace("\n", "").split("|")
LOCS = """Madrid|Toronto|Britain|Lisbon|Nairobi|Osaka|Lyon|Brazil|Norway|Cairo|Lima|Seoul|Chicago|
New York|Buenos Aires|Hamburg|Mumbai|Poland|Vietnam|Kenya|Oslo|Sydney|Montreal|Prague|Ghana|
Istanbul|Texas|Bavaria|Santiago|Finland|Hanoi|Morocco|Rotterdam|Peru|Denmark|Jakarta|Geneva|
Mexico City|South Africa|Quebec|the Alps|the Nile|Scotland|Manila|Athens|Dublin|Vancouver|Warsaw|
Lagos|Kyoto|Bogota|Bangkok|Ontario|Sicily|Tunisia|New Zealand|Casablanca|Helsinki""".replace("\n", "").split("|")
MISC = """French|German|Japanese|Brazilian|Kenyan|Olympics|World Cup|Champions Trophy|Nobel Prize|
English|Spanish|Christmas|Ramadan|Tour de France|Grand Prix|Canadian|Norwegian|Polish|Euro|Arabic|
Mexican|Italian|Swiss|Korean|Paralympics|Open Championship|Peruvian|Danish|Irish|Golden Globe""".replace("\n", "").split("|")

# Templates: {P} person, {O} organisation, {L} location, {M} misc, {N} number, {D} day.
TEMPLATES = """{P} said on {D} that {O} would open a new office in {L} .
{O} shares rose {N} percent in {L} after the {M} announcement .
{P} , chief executive of {O} , told reporters in {L} that profits were up .
The {M} team beat {O} {N} - 1 in {L} on {D} .
{P} won the {M} in {L} last year .
Police in {L} said {N} people were hurt in the accident .
{O} agreed to buy a stake in {O} for {N} million dollars .
{P} and {P} met in {L} to discuss the {M} proposal .
" We are very happy with the result , " {P} said .
The talks between {L} and {L} ended without an agreement on {D} .
{P} 's spokeswoman declined to comment on the report .
Officials from {O} flew to {L} to meet {P} .
{P} ( {L} ) finished second in {N} minutes .
The {M} government said it would send aid to {L} .
Fans in {L} celebrated after {O} reached the final .
{O} said it expected sales to grow by {N} percent next year .
{P} , who was born in {L} , joined {O} in {N} .
Heavy rain hit {L} on {D} , closing roads near {L} .
The {M} film festival opened in {L} with a new {M} drama .
{P} told the {M} newspaper that {O} had made mistakes .
Prices fell sharply on {D} as traders waited for the decision .
A spokesman for {O} said the plant in {L} would close .
{P} scored twice as {O} beat {O} in {L} .
The minister arrived in {L} on {D} for a {N} - day visit .
{O} , based in {L} , employs about {N} people .
{P} thanked {P} for the support of {O} .
Exports from {L} to {L} rose {N} percent in the first quarter .
The {M} and the {M} are both held every four years .
{P} resigned from {O} after {N} years .
Delegates at the {M} summit in {L} agreed on new rules .
Nothing changed in the market on {D} .
The weather was cold and dry across the region .
{P} will travel to {L} and {L} next week , {O} said .
Under the deal , {O} will supply {O} with parts from its factory in {L} .
{P} , a {M} citizen , was released on {D} .
Traffic between {L} and {L} was halted for {N} hours .
Researchers at {O} published the study on {D} .
{L} 's central bank kept interest rates at {N} percent .
The {M} speaking minority in {L} asked for new schools .
{P} , {P} and {P} were named in the {M} squad .
Talks will resume in {L} on {D} , a statement from {O} said .
The company did not say how many jobs would be lost .
{O} rejected the offer from {P} on {D} .""".splitlines()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()


def _person(rng: random.Random) -> list[str]:
    names = [rng.choice(FIRST), rng.choice(LAST)]
    if rng.random() < 0.15:
        names.append(rng.choice(LAST))
    elif rng.random() < 0.15:
        names = names[1:]  # surname only, as in follow-up mentions
    return names


def sentence(rng: random.Random) -> list[tuple[str, str]]:
    """One sentence as (token, IOB2 tag) pairs."""
    out: list[tuple[str, str]] = []
    for piece in rng.choice(TEMPLATES).split():
        if piece in ("{P}", "{O}", "{L}", "{M}"):
            kind = {"{P}": "PER", "{O}": "ORG", "{L}": "LOC", "{M}": "MISC"}[piece]
            words = _person(rng) if kind == "PER" else {"ORG": ORGS, "LOC": LOCS, "MISC": MISC}[kind]
            words = words if kind == "PER" else rng.choice(words).split()
            if kind == "LOC" and words[0] == "the":  # "the Alps": the article is not part of the name
                out.append(("the", "O"))
                words = words[1:]
            out.extend((w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(words))
        elif piece == "{N}":
            out.append((str(rng.choice([2, 3, 5, 7, 12, 15, 40, 120, 350, 1999, 2008, 2021])), "O"))
        elif piece == "{D}":
            out.append((rng.choice(DAYS), "O"))
        else:
            out.append((piece, "O"))
    if out and out[0][1] == "O" and out[0][0].islower():
        out[0] = (out[0][0].capitalize(), "O")
    return out


def generate(n: int, seed: int, exclude: set[str]) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    sentences: list[list[tuple[str, str]]] = []
    seen = set(exclude)
    while len(sentences) < n:
        s = sentence(rng)
        key = " ".join(w for w, _ in s)
        if key not in seen:
            seen.add(key)
            sentences.append(s)
    return sentences


def main() -> None:
    here = Path(__file__).resolve().parent
    used: set[str] = set()
    for name, n, seed in (("train", 500, 1), ("dev", 125, 2), ("test", 125, 3)):
        sentences = generate(n, seed, used)
        used |= {" ".join(w for w, _ in s) for s in sentences}
        text = "\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences) + "\n"
        (here / f"{name}.txt").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
