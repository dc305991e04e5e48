"""Generate the small English NER sample that ner-export ships for its demo and tests.

The text is synthetic and written by this project: sentence templates composed here, filled from
name lists of invented organisations (companies, clubs, agencies, universities), common first and
last names from many cultures, real place names and generic "miscellaneous" entities
(nationalities, languages, events, products). Nothing is copied from CoNLL-2003 or any other corpus.

Run `python finetune/sample/generate.py` to rewrite train.txt, dev.txt and test.txt beside this file.
Output is deterministic (fixed seeds, one per split) and no sentence appears in two splits. Format:
one `word TAG` pair a line, a blank line after each sentence, IOB2 tags over PER, ORG, LOC and MISC;
tokens follow newswire conventions (punctuation, quotes and possessive 's are separate tokens).
"""

from __future__ import annotations

import random
from pathlib import Path

FIRST = """Maria José Ahmed Olga Kenji Aisha Pierre Zoë Liam Ingrid Tomás Mei Rahul Fatima Lars Chloé
Dmitri Amara Hiroshi Sofia Mateo Anika Kwame Elena Yusuf Nadia Oscar Priya Jonas Leila Marco Hana
Samuel Ewa Diego Nora Tariq Greta Felipe Yara Ivan Astrid Kofi Lucía Emil Sana Bruno Ines Adebayo
Björn Carmen Daniel Esther Farid Gabriel Helga Ibrahim Julia Kateřina Luis Miriam Nikolai Omar Paula
Rafael Sigrid Thomas Ursula Viktor Wei Xavier Yuki Zainab Andrés Beatriz Chen Dalia François Günter
Hamid Isabel Jin Kamala Lena Moussa Niamh Olu Pablo Renée Sean Tanvir Agnieszka Jürgen""".split()
LAST = """Lopez Müller Watanabe Okafor Dvořák Petrova Haddad Lindqvist Moreau Rossi Tanaka Khan Novak
Silva Jensen Kowalski Mensah Ivanova Garcia Nakamura Fischer Costa Osei Berg Schmidt Duarte Larsen
Sato Hussain Kovač Romero Nilsson Abebe Fontaine Keller Yilmaz Marsh Brennan Quispe Andersson
Wójcik Nguyen Park Kim Singh Patel Adeyemi Okonkwo Herrera Castillo Johansson Virtanen Horvat
Papadopoulos Dubois Bianchi Öztürk Hoffmann Zhang Liu Mwangi Achebe Svoboda Kuznetsov Ortega
Murphy O'Brien Campbell Walsh Bakker Janssen Mahmoud Farouk Gonzalez Peña Sánchez Ferreira""".split()
ORGS = """Northwind Logistics|Helios Energy|Bank of England|Bank of Lisbon|Osaka Blue|Lyon United|
Atlas Mining Group|Crescent Airways|Meridian Bank|Polaris Motors|Harbor Pharma|Greenfield University|
Summit Telecom|Riverside Rovers|Orion Capital|Blue Ridge Foods|National Weather Agency|Cobalt Systems|
Redwood Insurance|Silverline Rail|Aurora Media|Federal Reserve Board|World Health Council|
Eastern Shipping Company|Union of Dock Workers|Kestrel Analytics|Maple Leaf Steel|Vega Robotics|
Sapphire Hotels|Central Statistics Office|Iron Bridge FC|Tidewater Chemicals|Granite Partners|
Lumen Labs|Pacific Grain Board|Starling Post|Boreal Forest Products|Quantum Ledger|Coral Coast Tourism|
Highland Distillers|Ministry of Finance|Delta Harbour Authority|Nova Pictures|Saltmarsh College|
Westbrook Athletic|Falcon Aerospace|Juniper Health|Institute of Marine Studies|Red Lantern Bank|
Copperfield Textiles|Port Authority of Valdoro|Bluewater Airlines|Stonegate Rangers|Lakeside Academy|
Evergreen Pension Fund|Nordic Wind Alliance|Ashford Wanderers|Crown Street Bank|Zenith Software|
Open Roads Foundation|Ivory Coast Cocoa Board|Trident Defence|Sunrise Dairy|Marlow Brewing Company""".replace(
    "\n", ""
).split("|")
LOCS = """Madrid|Toronto|Britain|Lisbon|Nairobi|Osaka|Lyon|Brazil|Norway|Cairo|Lima|Seoul|Chicago|
New York|Buenos Aires|Hamburg|Mumbai|Poland|Vietnam|Kenya|Oslo|Sydney|Montreal|Prague|Ghana|
Istanbul|Texas|Bavaria|Santiago|Finland|Hanoi|Morocco|Rotterdam|Peru|Denmark|Jakarta|Geneva|
Mexico City|South Africa|Quebec|the Alps|the Nile|Scotland|Manila|Athens|Dublin|Vancouver|Warsaw|
Lagos|Kyoto|Bogota|Bangkok|Ontario|Sicily|Tunisia|New Zealand|Casablanca|Helsinki|São Paulo|Zürich|
Kraków|Reykjavík|Addis Ababa|Hong Kong|Los Angeles|Cape Town|Rio de Janeiro|Tel Aviv|Kuala Lumpur|
Patagonia|Siberia|Tasmania|California|Andalusia|Punjab|Normandy|Catalonia|Egypt|India|Chile|Japan|
Germany|Canada|Australia|Portugal|Nigeria|Turkey|Sweden|the Danube|the Sahara""".replace("\n", "").split("|")
NATIONAL = """French German Japanese Brazilian Kenyan Canadian Norwegian Polish Mexican Italian Swiss
Korean Peruvian Danish Irish Portuguese Turkish Nigerian Australian Scottish""".split()
LANGUAGES = "English Spanish Arabic French German Portuguese Mandarin Swahili Hindi Japanese".split()
EVENTS = """Olympics|World Cup|Champions Trophy|Nobel Prize|Tour de France|Grand Prix|Paralympics|
Open Championship|Golden Globe|Commonwealth Games|Booker Prize|Ryder Cup""".replace("\n", "").split("|")
HOLIDAYS = "Christmas Ramadan Diwali Easter".split()
PRODUCTS = ["Boeing 747", "Airbus A320", "Concorde"]

# {P} person, {O} organisation, {L} location; MISC: {A} nationality, {G} language, {E} event or prize,
# {H} holiday, {R} product; {N} number, {S} small number, {Y} year, {D} date.
TEMPLATES = """{P} said on {D} that {O} would open a new office in {L} .
{O} shares rose {N} percent in {L} after the {E} announcement .
{P} , chief executive of {O} , told reporters in {L} that profits were up .
The {A} team beat {O} {S} - 1 in {L} on {D} .
{P} won the {E} in {L} last year .
Police in {L} said {N} people were hurt in the accident .
{O} agreed to buy a stake in {O} for {N} million dollars .
{P} and {P} met in {L} to discuss the {A} proposal .
" We are very happy with the result , " {P} said .
The talks between {L} and {L} ended without an agreement on {D} .
{P} 's spokeswoman declined to comment on the report .
Officials from {O} flew to {L} to meet {P} .
{P} ( {L} ) finished second in {N} minutes .
The {A} government said it would send aid to {L} .
Fans in {L} celebrated after {O} reached the final .
{O} said it expected sales to grow by {N} percent next year .
{P} , who was born in {L} , joined {O} in {Y} .
Heavy rain hit {L} on {D} , closing roads near {L} .
The {A} film festival opened in {L} with a new {A} drama .
{P} told the {A} newspaper that {O} had made mistakes .
Prices fell sharply on {D} as traders waited for the decision .
A spokesman for {O} said the plant in {L} would close .
{P} scored twice as {O} beat {O} in {L} .
The minister arrived in {L} on {D} for a {S} - day visit .
{O} , based in {L} , employs about {N} people .
{P} thanked {P} for the support of {O} .
Exports from {L} to {L} rose {N} percent in the first quarter .
The {E} and the {E} are both held every four years .
{P} resigned from {O} after {S} years .
Delegates at a summit in {L} agreed on new rules for the {E} .
Nothing changed in the market on {D} .
The weather was cold and dry across the region .
{P} will travel to {L} and {L} next week , {O} said .
Under the deal , {O} will supply {O} with parts from its factory in {L} .
{P} , a {A} citizen , was released on {D} .
Traffic between {L} and {L} was halted for {N} hours .
Researchers at {O} published the study on {D} .
{L} 's central bank kept interest rates at {N} percent .
The {G} speaking minority in {L} asked for new schools .
{P} , {P} and {P} were named in the {A} squad .
Talks will resume in {L} on {D} , a statement from {O} said .
The company did not say how many jobs would be lost .
{O} rejected the offer from {P} on {D} .
{P} could not be reached for comment .
Shares in {O} closed at {N} .
{P} speaks fluent {G} and {G} .
The {E} will be held in {L} in {Y} .
{O} 's new chairman , {P} , takes over on {D} .
" It was a difficult season for {O} , " said {P} , who coaches the club in {L} .
Asked about the {E} , {P} said : " We will see . "
The museum in {L} reopened on {D} after {N} months of repairs .
About {N} workers went on strike at the {O} plant near {L} on {D} , union leaders said .
{P} , a professor at {O} , said the {A} economy would grow by {N} percent this year .
Earlier on {D} , {P} of {O} told a conference in {L} that {A} and {A} firms were investing in {L} , while {P} warned that costs had risen by {N} percent .
{P} denied the report .
Talks went on late .
{O} shares fell sharply .
The river burst its banks and {N} families had to leave their homes .
Markets were closed on {D} for a public holiday .
{P} beat {P} {S} - 3 in the second round of the {E} in {L} .
The {A} ambassador to {L} , {P} , was summoned by {O} on {D} .
A new bridge linking {L} and {L} will cost about {N} million dollars , {O} said in a statement on {D} .
{O} said on {D} that it had hired {P} , formerly of {O} , as head of its business in {L} .
Inflation slowed to {N} percent , the lowest level since {Y} , figures showed on {D} .
Local television showed crowds in {L} waving flags during the {E} celebrations .
{P} 's novel , written in {G} , won the {E} .
The {E} was watched by {N} million people in {L} alone .
Shops in {L} stayed open late before {H} .
{O} will replace its ageing {R} fleet by {Y} , {P} said .
A {R} carrying {N} passengers landed safely in {L} after an engine failure .
Many {A} families in {L} celebrate {H} with a large meal .""".splitlines()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()
NUMBERS = "2 3 4 5 7 9 12 15 18 20 25 40 60 120 350 1,200 4.5 0.8 2.75".split()


def _person(rng: random.Random) -> list[str]:
    roll = rng.random()
    if roll < 0.12:  # a second family name, as in "Maria Lopez Garcia"
        return [rng.choice(FIRST), rng.choice(LAST), rng.choice(LAST)]
    if roll < 0.25:  # surname only, as in follow-up mentions
        return [rng.choice(LAST)]
    return [rng.choice(FIRST), rng.choice(LAST)]


def _date(rng: random.Random) -> list[str]:
    roll = rng.random()
    if roll < 0.55:
        return [rng.choice(DAYS)]
    if roll < 0.8:
        return [rng.choice(MONTHS), str(rng.randint(1, 28))]
    return [str(rng.randint(1, 28)), rng.choice(MONTHS), str(rng.randint(1990, 2024))]


CHOICES = {
    "{O}": ("ORG", ORGS),
    "{L}": ("LOC", LOCS),
    "{A}": ("MISC", NATIONAL),
    "{G}": ("MISC", LANGUAGES),
    "{E}": ("MISC", EVENTS),
    "{H}": ("MISC", HOLIDAYS),
    "{R}": ("MISC", PRODUCTS),
}


def sentence(rng: random.Random, templates: list[str]) -> list[tuple[str, str]]:
    """One sentence as (token, IOB2 tag) pairs."""
    out: list[tuple[str, str]] = []
    for piece in rng.choice(templates).split():
        if piece == "{P}" or piece in CHOICES:
            kind, names = ("PER", None) if piece == "{P}" else CHOICES[piece]
            words = _person(rng) if names is None else rng.choice(names).split()
            if words[0] == "the":  # "the Alps": the article is not part of the name
                out.append(("the", "O"))
                words = words[1:]
            out.extend((w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(words))
        elif piece == "{N}":
            out.append((rng.choice(NUMBERS), "O"))
        elif piece == "{S}":
            out.append((str(rng.randint(2, 9)), "O"))
        elif piece == "{Y}":
            out.append((str(rng.randint(1990, 2024)), "O"))
        elif piece == "{D}":
            out.extend((w, "O") for w in _date(rng))
        else:
            out.append((piece, "O"))
    if out[0][1] == "O" and out[0][0].islower():
        out[0] = (out[0][0].capitalize(), "O")
    return out


def generate(n: int, seed: int, exclude: set[str]) -> list[list[tuple[str, str]]]:
    """`n` distinct sentences from `seed`, none of whose text is in `exclude`."""
    rng = random.Random(seed)
    sentences: list[list[tuple[str, str]]] = []
    seen = set(exclude)
    while len(sentences) < n:
        s = sentence(rng, TEMPLATES)
        key = " ".join(w for w, _ in s)
        if key not in seen:
            seen.add(key)
            sentences.append(s)
    return sentences


def main() -> None:
    here = Path(__file__).resolve().parent
    used: set[str] = set()
    for name, n, seed in (("train", 520, 2003), ("dev", 130, 2017), ("test", 130, 2029)):
        sentences = generate(n, seed, used)
        used |= {" ".join(w for w, _ in s) for s in sentences}
        text = "\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences) + "\n"
        (here / f"{name}.txt").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
