"""Category vocabularies of the benchmarks, and the registry that record validation checks.

Lists whose source is public are given exactly as published (see docs/data3d.md for the files).
Names are lower case with underscores, as the benchmarks spell them.

What could NOT be found in public code: ImageNet3D's full 200-name category list and its
189-class "metaclass" subset (the toolkit reads them from local files that are not in either
repository). `load_imagenet3d` therefore takes the categories from the release's own folders,
exactly as the toolkit does (`os.listdir`), and registers them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

__all__ = [
    "PASCAL3D_CATEGORIES",
    "OBJECTNET3D_CATEGORIES",
    "IMAGENET3D_KNOWN_CATEGORIES",
    "IMAGENET3D_TOOLKIT_CATEGORIES",
    "IMAGENET3D_EXP_CATEGORIES",
    "IMAGENET3D_OPEN_POSE_SPLIT",
    "SHAPENET_SYNSETS",
    "register_categories",
    "is_known_category",
    "known_categories",
    "normalize_category",
]

# PASCAL3D+ release 1.1, the 12 rigid PASCAL VOC classes.
PASCAL3D_CATEGORIES = (
    "aeroplane", "bicycle", "boat", "bottle", "bus", "car", "chair", "diningtable", "motorbike", "sofa",
    "train", "tvmonitor",
)

# ObjectNet3D's 100 classes (its Image_sets/classes.txt order, which is alphabetical).
OBJECTNET3D_CATEGORIES = (
    "aeroplane", "ashtray", "backpack", "basket", "bed", "bench", "bicycle", "blackboard", "boat",
    "bookshelf", "bottle", "bucket", "bus", "cabinet", "calculator", "camera", "can", "cap", "car",
    "cellphone", "chair", "clock", "coffee_maker", "comb", "computer", "cup", "desk_lamp", "diningtable",
    "dishwasher", "door", "eraser", "eyeglasses", "fan", "faucet", "filing_cabinet", "fire_extinguisher",
    "fish_tank", "flashlight", "fork", "guitar", "hair_dryer", "hammer", "headphone", "helmet", "iron",
    "jar", "kettle", "key", "keyboard", "knife", "laptop", "lighter", "mailbox", "microphone", "microwave",
    "motorbike", "mouse", "paintbrush", "pan", "pen", "pencil", "piano", "pillow", "plate", "pot",
    "printer", "racket", "refrigerator", "remote_control", "rifle", "road_pole", "satellite_dish",
    "scissors", "screwdriver", "shoe", "shovel", "sign", "skate", "skateboard", "slipper", "sofa",
    "speaker", "spoon", "stapler", "stove", "suitcase", "teapot", "telephone", "toaster", "toilet",
    "toothbrush", "train", "trash_bin", "trophy", "tub", "tvmonitor", "vending_machine",
    "washing_machine", "watch", "wheelchair",
)

# The 63 "known" categories of ImageNet3D's open-vocabulary pose experiments
# (wufeim/imagenet3d_exp, file know_categories.txt).
IMAGENET3D_KNOWN_CATEGORIES = (
    "aeroplane", "air_hammer", "ashtray", "ax", "backpack", "barbell", "baseball_bat", "beaker", "bed",
    "bench", "bicycle", "boat", "bottle", "bus", "camera", "car", "cellphone", "clock", "coffee_maker",
    "cooling_tower", "diningtable", "dishwasher", "eyeglasses", "ferris_wheel", "flashlight", "fork",
    "funnel", "guitar", "hair_dryer", "hammer", "hot_air_balloon", "jinrikisha", "key", "laptop",
    "light_bulb", "lipstick", "micrometer", "microphone", "motorbike", "pan", "pillow", "racket",
    "refrigerator", "riding_mower", "road_pole", "sax", "segway", "shaver", "shoe", "shopping_cart",
    "shovel", "sign", "skate", "sombrero", "suitcase", "syringe", "teapot", "toilet", "toothbrush",
    "train", "treadmill", "tub", "wind_turbine",
)

# The 187 categories whose CAD models the toolkit's vis_models.md shows (wufeim/imagenet3d).
# Not the release's 200 names (see the module docstring); a superset check, not the split.
IMAGENET3D_TOOLKIT_CATEGORIES = (
    "aeroplane", "airship", "ambulance", "ashtray", "ax", "backpack", "barbell", "baseball_bat", "basket",
    "battery", "beaker", "bed", "bench", "bicycle", "bicycle_built_for_two", "bicycle_pump",
    "billiard_table", "blackboard", "boat", "bookshelf", "bottle", "bow", "bowl", "bowling_pin",
    "boxing_glove", "bucket", "bumper_car", "bus", "cabinet", "calculator", "camcorder", "camera", "can",
    "cap", "car", "cart", "cellphone", "chain_saw", "chair", "clock", "coffee_maker", "comb", "computer",
    "cone", "cooker", "cooling_tower", "crutch", "cup", "desk_lamp", "diningtable", "dishwasher", "door",
    "dumbbell", "dune_buggy", "eraser", "erlenmeyer_flask", "eyeglasses", "fan", "faucet", "ferris_wheel",
    "filing_cabinet", "fire_extinguisher", "fire_truck", "fish_tank", "flashlight", "fork", "forklift",
    "french_horn", "frigate", "frisbee", "funnel", "garbage_truck", "glider", "go_kart", "grinder",
    "guitar", "hacksaw", "hair_dryer", "hammer", "hand_barrow", "hand_mower", "harp", "harvester",
    "headphone", "helmet", "highchair", "hockey_stick", "hot_air_balloon", "hourglass", "interphone",
    "iron", "jar", "jinrikisha", "kettle", "key", "keyboard", "knife", "laptop", "life_buoy",
    "light_bulb", "lighter", "lipstick", "magnifier", "mailbox", "megaphone", "micrometer", "microphone",
    "microwave", "millwheel", "motorbike", "mouse", "padlock", "paintbrush", "pan", "pay_phone", "pen",
    "pencil", "piano", "pillow", "plate", "pot", "power_drill", "printer", "projector", "punching_bag",
    "racket", "radiator", "recreational_vehicle", "refrigerator", "remote_control", "riding_mower",
    "rifle", "road_pole", "salt_or_pepper_shaker", "satellite_dish", "sax", "school_bus", "scissors",
    "screwdriver", "segway", "sewing_machine", "shaver", "shoe", "shopping_cart", "shovel", "sign", "sink",
    "skate", "skateboard", "slipper", "snowmobile", "sofa", "sombrero", "speaker", "spoon", "stapler",
    "stove", "suitcase", "sundial", "syringe", "table_tennis_table", "tank", "teapot", "telephone",
    "toaster", "toilet", "toothbrush", "tractor", "train", "trash_bin", "treadmill", "tricycle",
    "trolleybus", "trophy", "trowel", "tub", "tvmonitor", "unicycle", "vending_machine", "violin",
    "washer", "washing_machine", "watch", "wheelchair", "whisk", "wind_turbine", "yurt",
)

# The 126 categories hard-coded as IMAGENET_CATES in wufeim/imagenet3d_exp (imagenet3d/utils).
IMAGENET3D_EXP_CATEGORIES = (
    "aeroplane", "airship", "ambulance", "ashtray", "ax", "backpack", "basket", "beaker", "bed", "bench",
    "bicycle", "bicycle_built_for_two", "blackboard", "boat", "bookshelf", "bottle", "bow", "bowl",
    "bucket", "bus", "cabinet", "calculator", "camera", "can", "cap", "car", "cart", "cellphone",
    "chain_saw", "chair", "clock", "coffee_maker", "comb", "computer", "crutch", "cup", "diningtable",
    "dishwasher", "door", "dumbbell", "eraser", "eyeglasses", "fan", "faucet", "filing_cabinet",
    "fire_extinguisher", "fire_truck", "fish_tank", "flashlight", "fork", "forklift", "french_horn",
    "garbage_truck", "go_kart", "guitar", "hair_dryer", "hammer", "hand_barrow", "harp", "harvester",
    "headphone", "helmet", "hourglass", "iron", "jar", "jinrikisha", "kettle", "key", "keyboard", "knife",
    "lighter", "mailbox", "microphone", "microwave", "motorbike", "mouse", "padlock", "paintbrush", "pan",
    "pay_phone", "pen", "pencil", "piano", "pillow", "plate", "pot", "power_drill", "printer",
    "punching_bag", "racket", "recreational_vehicle", "refrigerator", "remote_control", "rifle",
    "road_pole", "salt_or_pepper_shaker", "satellite_dish", "sax", "screwdriver", "shoe", "shovel", "sink",
    "skate", "skateboard", "slipper", "snowmobile", "sofa", "speaker", "spoon", "stapler", "stove",
    "suitcase", "teapot", "telephone", "toaster", "toilet", "toothbrush", "train", "trash_bin", "trophy",
    "tvmonitor", "vending_machine", "violin", "washing_machine", "watch", "wheelchair",
)

# The seen/unseen split of imagenet3d_exp's configs/open_pose_estimation_resnet50.yaml, as published.
# Note: "hair_dryer" is listed on both sides; the toolkit then trains on it and still reports it as
# unseen. `imagenet3d.open_pose_split()` returns a disjoint version.
IMAGENET3D_OPEN_POSE_SPLIT = {
    "train": (
        "aeroplane", "car", "bus", "boat", "ashtray", "backpack", "ax", "baseball_bat", "shovel",
        "babby_buggy", "jinrikisha", "bed", "chair", "sofa", "bookshelf", "clock", "coffee_maker",
        "computer", "keyboard", "hair_dryer", "dishwasher", "washer", "camera", "bicycle", "motorbike",
        "snowmobile", "basket", "diningtable", "bottle", "can", "plate", "barbell", "faucet", "sink",
        "guitar", "piano",
    ),
    "val": (
        "airship", "agitator_truck", "fire_truck", "forklift", "garbage_truck", "go_kart", "golfcart",
        "harvester", "recreational_vehicle", "tank", "tractor", "train", "trolley_bus", "cap", "bow",
        "chain_saw", "hammer", "knife", "hand_barrow", "shopping_cart", "wheelchair", "cart",
        "filing_cabinet", "bench", "cabinet", "combination_lock", "desk_lamp", "fan", "laptop",
        "microwave", "pay_phone", "power_drill", "printer", "projector", "refrigerator", "speaker",
        "telephone", "vending_machine", "washing_machine", "watch", "calculator", "cellphone", "kettle",
        "mouse", "remote_control", "stove", "toaster", "tvmonitor", "bicycle_built_for_two", "scooter",
        "segway", "tricycle", "unicycle", "basketball_hoop", "bucket", "trash_bin", "billbard_table",
        "tennis_table", "bowl", "bowling_pin", "cup", "jar", "potpan", "salt_or_pepper_shaker", "trophy",
        "wine_glass", "dumbbell", "fire_extinguisher", "hair_dryer", "rifle", "toilet", "harp",
        "trumpet", "violin",
    ),
}

# ShapeNetCore synset id -> name (v2's 55 synsets; v1 adds 02834778 bicycle and 02858304 boat and
# calls 02992529 "mobile phone"). Names as ShapeNet spells them; `normalize_category` turns
# "trash bin" into "trash_bin".
SHAPENET_SYNSETS = {
    "02691156": "airplane", "02747177": "trash bin", "02773838": "bag", "02801938": "basket",
    "02808440": "bathtub", "02818832": "bed", "02828884": "bench", "02834778": "bicycle",
    "02843684": "birdhouse", "02858304": "boat", "02871439": "bookshelf", "02876657": "bottle",
    "02880940": "bowl", "02924116": "bus", "02933112": "cabinet", "02942699": "camera", "02946921": "can",
    "02954340": "cap", "02958343": "car", "02992529": "cellphone", "03001627": "chair",
    "03046257": "clock", "03085013": "keyboard", "03207941": "dishwasher", "03211117": "display",
    "03261776": "earphone", "03325088": "faucet", "03337140": "file cabinet", "03467517": "guitar",
    "03513137": "helmet", "03593526": "jar", "03624134": "knife", "03636649": "lamp", "03642806": "laptop",
    "03691459": "loudspeaker", "03710193": "mailbox", "03759954": "microphone", "03761084": "microwaves",
    "03790512": "motorbike", "03797390": "mug", "03928116": "piano", "03938244": "pillow",
    "03948459": "pistol", "03991062": "flowerpot", "04004475": "printer", "04074963": "remote",
    "04090263": "rifle", "04099429": "rocket", "04225987": "skateboard", "04256520": "sofa",
    "04330267": "stove", "04379243": "table", "04401088": "telephone", "04460130": "tower",
    "04468005": "train", "04530566": "watercraft", "04554684": "washer",
}


def normalize_category(name: str) -> str:
    """Lower case, spaces and dashes to underscores: 'Trash Bin' -> 'trash_bin'."""
    return "_".join(str(name).strip().lower().replace("-", " ").split())


_lock = threading.Lock()
_registered: set[str] = set()
_builtin = frozenset(
    PASCAL3D_CATEGORIES + OBJECTNET3D_CATEGORIES + IMAGENET3D_KNOWN_CATEGORIES
    + IMAGENET3D_TOOLKIT_CATEGORIES + IMAGENET3D_EXP_CATEGORIES + IMAGENET3D_OPEN_POSE_SPLIT["train"]
    + IMAGENET3D_OPEN_POSE_SPLIT["val"] + tuple(normalize_category(n) for n in SHAPENET_SYNSETS.values())
    + ("mobile_phone", "table", "mug", "monitor")
)
_procedural_checked = False


def register_categories(names: Iterable[str]) -> None:
    """Make categories known to record validation (e.g. the categories of a custom asset set).

    Loaders and asset sources register what they find; call this for hand-made records.
    """
    with _lock:
        _registered.update(str(n) for n in names)


def _procedural_categories() -> tuple[str, ...]:
    """The procedural library's categories, if that module exists (imported lazily)."""
    try:
        from .procedural import CATEGORIES
    except Exception:  # the library is optional here, and a broken one must not break validation
        return ()
    return tuple(CATEGORIES)


def is_known_category(name: str) -> bool:
    global _procedural_checked
    if name in _builtin or name in _registered:
        return True
    if not _procedural_checked:
        _procedural_checked = True
        register_categories(_procedural_categories())
        return name in _registered
    return False


def known_categories() -> frozenset[str]:
    """Every category record validation accepts now."""
    is_known_category("")  # pulls in the procedural library's names once
    with _lock:
        return frozenset(_builtin | _registered)
