"""Numbers with units, read as one value per dimension so that equal quantities compare equal.

"100 °C" = "100 degrees Celsius" = "212 °F"; "1,000 m" = "1 km" = "100,000 cm"; "2 kg" = "2000 g". Only
conversions that are exact by definition are known (the foot is 0.3048 m, the pound 453.59237 g), so a rounded
figure ("39.4 inches" for "1 m") is not an equal quantity. A number without a unit is not a quantity: "100" is
left to ``numbers.numbers_in``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evaltune.metrics.numbers import same_number

# unit name (lower case) -> (dimension, factor to the dimension's base unit, offset added after the factor)
_UNITS: dict[str, tuple[str, float, float]] = {}


def _add(dimension: str, factor: float, *names: str, offset: float = 0.0) -> None:
    for name in names:
        _UNITS[name] = (dimension, factor, offset)


# Temperature in °C: °F → °C is (F - 32) · 5/9, K → °C is K - 273.15.
_add("temperature", 1.0, "°c", "ºc", "℃", "° c", "degrees celsius", "degree celsius", "degrees c", "celsius",
     "degrees centigrade", "centigrade")
_add("temperature", 5 / 9, "°f", "ºf", "℉", "° f", "degrees fahrenheit", "degree fahrenheit", "degrees f",
     "fahrenheit", offset=-160 / 9)
_add("temperature", 1.0, "kelvin", "kelvins", offset=-273.15)
_add("length", 0.001, "mm", "millimetre", "millimetres", "millimeter", "millimeters")
_add("length", 0.01, "cm", "centimetre", "centimetres", "centimeter", "centimeters")
_add("length", 1.0, "m", "metre", "metres", "meter", "meters")
_add("length", 1000.0, "km", "kilometre", "kilometres", "kilometer", "kilometers")
_add("length", 0.0254, "inch", "inches")
_add("length", 0.3048, "ft", "foot", "feet")
_add("length", 0.9144, "yd", "yard", "yards")
_add("length", 1609.344, "mi", "mile", "miles")
_add("mass", 0.001, "mg", "milligram", "milligrams")
_add("mass", 1.0, "g", "gram", "grams")
_add("mass", 1000.0, "kg", "kilogram", "kilograms", "kilo", "kilos")
_add("mass", 1_000_000.0, "tonne", "tonnes", "metric ton", "metric tons")
_add("mass", 453.59237, "lb", "lbs", "pound", "pounds")
_add("mass", 28.349523125, "oz", "ounce", "ounces")
_add("volume", 0.001, "ml", "millilitre", "millilitres", "milliliter", "milliliters")
_add("volume", 1.0, "l", "litre", "litres", "liter", "liters")
_add("time", 0.001, "ms", "millisecond", "milliseconds")
_add("time", 1.0, "sec", "secs", "second", "seconds")
_add("time", 60.0, "min", "mins", "minute", "minutes")
_add("time", 3600.0, "hr", "hrs", "hour", "hours")
_add("time", 86400.0, "day", "days")
_add("speed", 1.0, "m/s")
_add("speed", 1000 / 3600, "km/h", "kph", "kmh")
_add("speed", 1609.344 / 3600, "mph")
_add("percent", 1.0, "%", "percent", "per cent")

# Longest names first, so that "degrees celsius" wins over a shorter name inside it. A unit ends at a word
# boundary ("5 mi" but not "5 minutes" read as miles; "1990s" is no quantity: "s" is not a unit name here).
_NAMES = "|".join(re.escape(name) for name in sorted(_UNITS, key=len, reverse=True))
_QUANTITY = re.compile(
    rf"(?<![\w.,])([-−]?\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|[-−]?\d+(?:\.\d+)?)\s*({_NAMES})(?![\w°])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Quantity:
    """A number with a unit: ``value`` in the base unit of ``dimension`` (°C, m, g, l, s, m/s, %)."""

    text: str
    number: float
    value: float
    dimension: str

    def equals(self, other: Quantity) -> bool:
        """True for the same dimension and the same value once converted ("212 °F" equals "100 °C")."""
        # Conversions through 5/9 or 0.3048 leave a rounding error in the last digits: same_number's 1e-9 relative
        # tolerance absorbs it.
        return self.dimension == other.dimension and same_number(self.value, other.value)


def quantities_in(text: str) -> list[Quantity]:
    """Every number with a known unit in ``text``, in order ("100 °C", "1,000 m", "3.5 kg")."""
    found = []
    for match in _QUANTITY.finditer(text):
        number = float(match.group(1).replace(",", "").replace("−", "-"))
        dimension, factor, offset = _UNITS[_spaces(match.group(2).lower())]
        found.append(Quantity(match.group(0), number, number * factor + offset, dimension))
    return found


def _spaces(unit: str) -> str:
    return re.sub(r"\s+", " ", unit)


def has_equal(quantity: Quantity, others: list[Quantity]) -> bool:
    """True when some quantity of ``others`` equals ``quantity``."""
    return any(quantity.equals(other) for other in others)
