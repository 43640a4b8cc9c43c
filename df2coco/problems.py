"""Names of the problems a DeepFashion2 split can have.

The converter reports each problem it finds under one of these names, and the
synthetic generator injects quirks under the same names, so that a test can
check that every injected quirk is found and counted.
"""
from __future__ import annotations

# Problems the converter reports (and repairs or skips).
UNREADABLE_FILE = "unreadable_file"  # annotation file is not valid JSON / not an object
BAD_FIELD = "bad_field"  # a required field is missing or has the wrong type
MISSING_IMAGE = "missing_image"  # annos/<n>.json has no image/<n>.jpg
UNREADABLE_IMAGE = "unreadable_image"  # the image header cannot be read
UNKNOWN_CATEGORY = "unknown_category"  # category_id outside 1..13
NO_POLYGON = "no_polygon"  # segmentation empty, or no polygon survived validation
SHORT_POLYGON = "short_polygon"  # a polygon with fewer than 3 points (dropped)
ODD_POLYGON = "odd_polygon"  # a polygon with an odd number of coordinates (dropped)
FEW_LANDMARKS = "few_landmarks"  # fewer landmark triples than the category defines
OUT_OF_IMAGE = "out_of_image"  # bbox / polygon / landmark coordinates > 1 px outside the image (clipped)
DUPLICATE_NUMBER = "duplicate_number"  # two files with one number (000001.jpg + 000001.png, 1.json + 000001.json)

PROBLEMS = (
    UNREADABLE_FILE,
    BAD_FIELD,
    MISSING_IMAGE,
    UNREADABLE_IMAGE,
    UNKNOWN_CATEGORY,
    NO_POLYGON,
    SHORT_POLYGON,
    ODD_POLYGON,
    FEW_LANDMARKS,
    OUT_OF_IMAGE,
    DUPLICATE_NUMBER,
)

# Harmless quirks of real files that the converter handles silently (not problems).
FLOAT_COORDS = "float_coords"  # coordinates written as floats
GAP_ITEM_KEYS = "gap_item_keys"  # item keys not contiguous (item1, item3)

BENIGN_QUIRKS = (FLOAT_COORDS, GAP_ITEM_KEYS)
