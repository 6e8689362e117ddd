"""Colours as Vega draws them: what a config may give as a predictor's colour
(`figures.predictor_colors`)."""

from __future__ import annotations

import re


# Colours as Vega parses them (d3-color, which figures rely on): the CSS colour keywords,
# 'transparent', #rgb, #rgba, #rrggbb and #rrggbbaa, and the rgb(), rgba(), hsl() and
# hsla() forms, case and surrounding space aside.
CSS_COLOR_KEYWORDS = frozenset("""
    aliceblue antiquewhite aqua aquamarine azure beige bisque black blanchedalmond blue
    blueviolet brown burlywood cadetblue chartreuse chocolate coral cornflowerblue cornsilk
    crimson cyan darkblue darkcyan darkgoldenrod darkgray darkgreen darkgrey darkkhaki
    darkmagenta darkolivegreen darkorange darkorchid darkred darksalmon darkseagreen
    darkslateblue darkslategray darkslategrey darkturquoise darkviolet deeppink deepskyblue
    dimgray dimgrey dodgerblue firebrick floralwhite forestgreen fuchsia gainsboro
    ghostwhite gold goldenrod gray green greenyellow grey honeydew hotpink indianred indigo
    ivory khaki lavender lavenderblush lawngreen lemonchiffon lightblue lightcoral lightcyan
    lightgoldenrodyellow lightgray lightgreen lightgrey lightpink lightsalmon lightseagreen
    lightskyblue lightslategray lightslategrey lightsteelblue lightyellow lime limegreen
    linen magenta maroon mediumaquamarine mediumblue mediumorchid mediumpurple
    mediumseagreen mediumslateblue mediumspringgreen mediumturquoise mediumvioletred
    midnightblue mintcream mistyrose moccasin navajowhite navy oldlace olive olivedrab
    orange orangered orchid palegoldenrod palegreen paleturquoise palevioletred papayawhip
    peachpuff peru pink plum powderblue purple rebeccapurple red rosybrown royalblue
    saddlebrown salmon sandybrown seagreen seashell sienna silver skyblue slateblue
    slategray slategrey snow springgreen steelblue tan teal thistle tomato turquoise violet
    wheat white whitesmoke yellow yellowgreen""".split())

_INT = r"\s*[+-]?\d+\s*"

_NUM = r"\s*[+-]?(?:\d*\.)?\d+(?:[eE][+-]?\d+)?\s*"

_PCT = r"\s*[+-]?(?:\d*\.)?\d+(?:[eE][+-]?\d+)?%\s*"

_COLOR_FORMS = [re.compile(pattern) for pattern in (
    r"#(?:[0-9a-f]{3}|[0-9a-f]{4}|[0-9a-f]{6}|[0-9a-f]{8})",
    rf"rgb\({_INT},{_INT},{_INT}\)", rf"rgb\({_PCT},{_PCT},{_PCT}\)",
    rf"rgba\({_INT},{_INT},{_INT},{_NUM}\)", rf"rgba\({_PCT},{_PCT},{_PCT},{_NUM}\)",
    rf"hsl\({_NUM},{_PCT},{_PCT}\)", rf"hsla\({_NUM},{_PCT},{_PCT},{_NUM}\)")]

def is_color(value) -> bool:
    """Whether `value` is a colour string Vega draws (the forms above)."""
    if not isinstance(value, str):
        return False
    value = value.strip().lower()
    return (value in CSS_COLOR_KEYWORDS or value == "transparent"
            or any(form.fullmatch(value) for form in _COLOR_FORMS))
