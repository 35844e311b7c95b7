"""Fictional passages with questions, generated from a seed: ``domain.source=synthetic:N[:SEED]``.

Every name, place, date and number is drawn at random (names from invented syllables), so no
model can know the answers before it has read the passage: what a model answers after adaptation
it learned from its training texts. Each passage is about one subject (a town, a person, a
ship or a guild), in 4 to 7 sentences drawn from several sentence shapes per subject, with 4 to 6
questions whose answers are spans of the passage (asked in other words than the sentence that
holds them). The same N and SEED give the same passages, on every machine and Python version
(``random.Random`` seeded with a string); passages are split into train and eval by the domain
as any source is (a hash of the text), so the two are disjoint.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from seal_domains.knowledge.loader import Passage

PREFIX = "synthetic:"
_ONSETS = ["br", "c", "d", "dr", "f", "g", "h", "k", "l", "m", "n", "p", "qu", "r", "s", "st", "t", "th", "v", "w", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "ia", "ou"]
_CODAS = ["", "l", "n", "r", "s", "th", "m", "nd", "rk", "st"]
_PLACE_ENDINGS = ["moor", "ford", "holm", "wick", "mere", "vale", "by", "stead"]
_OCCUPATIONS = ["weaver", "miller", "glassblower", "surveyor", "clockmaker", "ferryman", "beekeeper", "cartographer",
                "tanner", "bellfounder"]
_GOODS = ["copper wire", "blue dye", "salted eels", "rope", "pine resin", "slate tiles", "wool blankets", "barley malt",
          "lamp oil", "paper"]
_ANIMALS = ["goats", "geese", "ravens", "donkeys", "ferrets", "peacocks", "owls", "tortoises"]
_CARGOES = ["timber", "salt", "tea", "iron nails", "cotton", "wine", "coal", "spices"]
_COLOURS = ["green", "plum", "ochre", "grey", "crimson", "teal", "amber", "white"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]

# a fact: (sentence, question, answer); the answer occurs verbatim in the sentence
Fact = tuple[str, str, str]


class _Draw:
    """Random fictional values, none repeated within one passage."""

    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def _fresh(self, make: Callable[[], str]) -> str:
        for _ in range(1000):
            value = make()
            if value not in self.used:
                self.used.add(value)
                return value
        raise RuntimeError("ran out of fresh values")  # a bug: the pools are far larger

    def word(self, syllables: int | None = None) -> str:
        n = syllables or self.rng.choice([2, 2, 3])
        return "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) + self.rng.choice(_CODAS)
                       for _ in range(n)).capitalize()

    def name(self) -> str:
        return self._fresh(lambda: f"{self.word(2)} {self.word()}")

    def place(self) -> str:
        return self._fresh(lambda: self.word(2) + self.rng.choice(_PLACE_ENDINGS))

    def year(self) -> str:
        return self._fresh(lambda: str(self.rng.randint(1350, 1950)))

    def number(self, low: int, high: int) -> str:
        return self._fresh(lambda: str(self.rng.randint(low, high)))

    def pick(self, pool: list[str]) -> str:
        return self._fresh(lambda: self.rng.choice(pool))


def _town(d: _Draw) -> tuple[str, list[Fact]]:
    town, founder, river = d.place(), d.name(), d.word(2)
    year, people, month = d.year(), f"{int(d.number(1200, 98000)):,}", d.pick(_MONTHS)
    tower, height, festival = f"{d.word(2)} Tower", d.number(21, 140), d.word(2)
    return town, [
        (f"{town} was founded by a {d.pick(_OCCUPATIONS)} named {founder}.", f"Who founded {town}?", founder),
        (f"The town dates from {year}.", f"In which year was {town} founded?", year),
        (f"The river that runs through {town} is called the {river}.", f"What is the name of the river in {town}?", river),
        (f"{town} has a population of {people}.", f"How many people live in {town}?", people),
        (f"Its main export is {(good := d.pick(_GOODS))}.", f"What does {town} mainly export?", good),
        (f"Every {month} the town holds the {festival} Festival.", f"In which month is the {festival} Festival held?", month),
        (f"The tallest building in {town} is {tower}, which is {height} metres high.", f"How tall is {tower}?",
         f"{height} metres"),
    ]


def _person(d: _Draw) -> tuple[str, list[Fact]]:
    person, spouse, place = d.name(), d.name(), d.place()
    born, years = d.year(), d.number(3, 40)
    married = str(int(born) + int(d.number(18, 50)))
    job, animal, count = d.pick(_OCCUPATIONS), d.pick(_ANIMALS), d.number(2, 30)
    book = f"The {d.word(2)} of {d.place()}"
    first = person.split()[0]
    return person, [
        (f"{person} grew up in {place}.", f"Where did {person} grow up?", place),
        (f"{first} was born in {born}.", f"In what year was {person} born?", born),
        (f"{first} worked as a {job} for {years} years.", f"What was {person}'s trade?", job),
        (f"{first} worked in that trade for {years} years.", f"For how many years did {person} work?", years),
        (f"In {married} {first} married {spouse}.", f"Whom did {person} marry?", spouse),
        (f"{first}'s only book was called {book}.", f"What was the title of {person}'s book?", book),
        (f"At home {first} kept {count} {animal}.", f"How many {animal} did {person} keep?", count),
    ]


def _ship(d: _Draw) -> tuple[str, list[Fact]]:
    ship, captain, port, wreck = f"the {d.word(2)}", d.name(), d.place(), d.place()
    launched, length = d.year(), d.number(18, 95)
    cargo, colour, crew = d.pick(_CARGOES), d.pick(_COLOURS), d.number(6, 60)
    title = ship[4:]
    return title, [
        (f"The ship {title} sailed from the port of {port}.", f"From which port did {title} sail?", port),
        (f"{title} was launched in {launched}.", f"When was {title} launched?", launched),
        (f"Its captain was {captain}.", f"Who was the captain of {title}?", captain),
        (f"The crew numbered {crew} sailors.", f"How many sailors were in the crew of {title}?", crew),
        (f"{title} mostly carried {cargo}.", f"What cargo did {title} mostly carry?", cargo),
        (f"The hull was painted {colour} and was {length} metres long.", f"What colour was the hull of {title}?", colour),
        (f"It sank off the coast of {wreck}.", f"Where did {title} sink?", wreck),
    ]


def _guild(d: _Draw) -> tuple[str, list[Fact]]:
    guild, leader, hall = f"{d.word(2)} Guild", d.name(), f"{d.word(2)} Hall"
    founded, members, fee = d.year(), d.number(12, 900), d.number(2, 90)
    trade, colour, city = d.pick(_OCCUPATIONS), d.pick(_COLOURS), d.place()
    return guild, [
        (f"The {guild} of {_plural(trade)} was formed in {city}.", f"In which city was the {guild} formed?", city),
        (f"The guild dates from {founded}.", f"When was the {guild} formed?", founded),
        (f"Its first master was {leader}.", f"Who was the first master of the {guild}?", leader),
        (f"By its peak it counted {members} members.", f"How many members did the {guild} have at its peak?", members),
        (f"Members met every week in {hall}.", f"Where did the members of the {guild} meet?", hall),
        (f"Each member paid a yearly fee of {fee} silver coins.", f"How much was the yearly fee of the {guild}?",
         f"{fee} silver coins"),
        (f"Its banner was {colour} with a white key.", f"What colour was the banner of the {guild}?", colour),
    ]


SUBJECTS = [_town, _person, _ship, _guild]


def _plural(noun: str) -> str:
    return noun[:-3] + "men" if noun.endswith("man") else noun + "s"


def synthetic_passage(seed: int, index: int) -> Passage:
    """Passage ``index`` of the set drawn with ``seed``."""
    rng = random.Random(f"seal-synthetic:{seed}:{index}")
    title, facts = rng.choice(SUBJECTS)(_Draw(rng))
    kept = sorted(rng.sample(range(len(facts)), rng.randint(4, 7)))  # the passage's sentences, in order
    asked = sorted(rng.sample(kept, min(len(kept), rng.randint(4, 6))))
    context = " ".join(facts[i][0] for i in kept)
    context = context[0].upper() + context[1:]
    return Passage(title, context, tuple((facts[i][1], (facts[i][2],)) for i in asked))


def parse_source(source: str) -> tuple[int, int] | None:
    """(N, seed) of ``synthetic:N[:SEED]``; None for any other source. Raises ValueError when malformed."""
    if not source.startswith(PREFIX):
        return None
    parts = source[len(PREFIX):].split(":")
    if len(parts) > 2 or not all(p.isdigit() for p in parts) or int(parts[0]) < 1:
        raise ValueError(source)
    return int(parts[0]), int(parts[1]) if len(parts) == 2 else 0


def synthetic_passages(count: int, seed: int = 0) -> list[Passage]:
    """``count`` fictional passages drawn with ``seed``."""
    return [synthetic_passage(seed, i) for i in range(count)]
