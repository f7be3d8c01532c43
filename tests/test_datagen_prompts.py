"""Prompts for ControlNet generation: templates, synonyms, tags, negatives, prompt files, a local LLM."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from data3d.categories import PASCAL3D_CATEGORIES
from datagen.prompts import (
    PromptBuilder,
    build_tiny_text_model,
    canonical_category,
    clean_generated_text,
    load_prompt_file,
    load_vocabulary,
    sanitize_tags,
)

PROCEDURAL = ("car", "chair", "table", "diningtable", "aeroplane", "bottle", "mug", "cup", "sofa", "monitor",
              "tvmonitor", "bus", "boat", "bicycle", "motorbike", "train")


def prompts(builder, category, n, tags=None, seed0=0):
    return [builder.build(category, tags, np.random.default_rng(seed0 + i))[0] for i in range(n)]


@pytest.mark.parametrize("category", sorted(set(PASCAL3D_CATEGORIES) | set(PROCEDURAL)))
def test_every_category_gets_a_prompt_naming_it(category):
    builder = PromptBuilder()
    vocab = load_vocabulary()
    canon = canonical_category(category)
    names = vocab["categories"][canon]["synonyms"]
    for text in prompts(builder, category, 12):
        assert any(name in text for name in names), text
        assert text.endswith(", best quality, extremely detailed")  # 3D-DST's positive suffix


def test_aliases_share_a_vocabulary_and_unknown_categories_fall_back():
    assert canonical_category("table") == canonical_category("Dining Table") == "diningtable"
    assert canonical_category("mug") == "cup" and canonical_category("monitor") == "tvmonitor"
    builder = PromptBuilder()
    assert prompts(builder, "table", 5) == prompts(builder, "diningtable", 5)
    generic_scenes = load_vocabulary()["generic"]["scenes"]
    for text in prompts(builder, "coffee_maker", 10):
        assert "coffee maker" in text
    assert any(any(s in t for s in generic_scenes) for t in prompts(builder, "coffee_maker", 10))


def test_deterministic_given_rng_and_varied_across_seeds():
    builder = PromptBuilder()
    a = prompts(builder, "car", 30)
    assert a == prompts(PromptBuilder(), "car", 30)
    assert len(set(a)) >= 25  # templates x styles x synonyms x scenes x lighting: rarely repeats
    rng = np.random.default_rng(7)
    first = builder.build("car", [], rng)
    assert builder.build("car", [], rng) != first  # the generator advances


def test_config_overrides_synonyms_scenes_and_lists():
    builder = PromptBuilder({"synonyms": {"car": ["roadster"]}, "scenes": {"car": ["on the moon"]},
                             "attribute_probability": 0.0, "styles": ["a photo of"], "lighting": ["moonlight"],
                             "templates": ["{style} {a_object} {scene}, {lighting}"]})
    assert set(prompts(builder, "car", 5)) == {"a photo of a roadster on the moon, moonlight, best quality, "
                                               "extremely detailed"}
    assert PromptBuilder({"templates": "dst3d"}).build("car", ["sports car"], np.random.default_rng(0))[0] == \
        "An image of car, best quality, extremely detailed"


def test_tags_name_the_object_and_noise_tags_never_appear():
    builder = PromptBuilder({"tag_probability": 1.0, "attribute_probability": 0.0})
    tags = ["sports car", "lowpoly", "game-ready", "https://sketchfab.com/x", "convertible"]
    texts = prompts(builder, "car", 40, tags)
    # every prompt names the object by exactly one tag: "sports car" as it is, or the subtype "convertible"
    one_tag = [("sports car" in t) != ("convertible" in t) for t in texts]
    assert all(one_tag), [t for t, ok in zip(texts, one_tag) if not ok]
    assert all(re.search(r"\b(a|an) convertible\b", t) for t in texts if "convertible" in t)
    assert sum("sports car" in t for t in texts) > 5 and sum("convertible" in t for t in texts) > 5
    assert not any("lowpoly" in t or "game" in t or "sketchfab" in t for t in texts)
    no_tags = PromptBuilder({"use_tags": False})
    assert not any("convertible" in t for t in prompts(no_tags, "car", 40, ["convertible"]))


def test_sanitize_tags_splits_synset_names_and_drops_noise():
    stop = load_vocabulary()["tag_stoplist"]
    assert sanitize_tags(["car,auto,automobile,machine,motorcar", "Sports_Car", "3D", "x" * 40,
                          "a b c d", "123", "www.x.com", "auto"], stop) == \
        ["car", "auto", "automobile", "machine", "motorcar", "sports car"]
    assert sanitize_tags(None) == [] and sanitize_tags("red;blue") == ["red", "blue"]


def test_negative_prompt_and_suffix():
    default_negative = PromptBuilder().build("car", [], np.random.default_rng(0))[1]
    assert "lowres" in default_negative and "watermark" in default_negative and "\n" not in default_negative
    builder = PromptBuilder({"negative_prompt": "ugly", "suffix": ""})
    text, negative = builder.build("bus", [], np.random.default_rng(0))
    assert negative == "ugly" and "best quality" not in text


def test_prompt_file_lines(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("# written by hand\n\n{a_object} in the rain\na {category} at night, film photo\n")
    builder = PromptBuilder({"file": str(path), "suffix": "", "attribute_probability": 0.0, "use_tags": False})
    texts = set(prompts(builder, "aeroplane", 30))
    assert len(texts) > 2
    assert all(t.endswith(" in the rain") or t == "a airplane at night, film photo" for t in texts)
    assert any(t.startswith("an airliner") or t.startswith("an aircraft") for t in texts)  # article fitted


def test_prompt_file_json_per_category_with_aliases_and_fallbacks(tmp_path):
    path = tmp_path / "llm_prompts.json"
    path.write_text(json.dumps({"_meta": {"by": "a language model"}, "table": ["a table set for dinner"],
                                "car": "a car in the snow", "*": ["something nice"]}))
    assert load_prompt_file(path) == {"diningtable": ["a table set for dinner"], "car": ["a car in the snow"],
                                      "*": ["something nice"]}
    builder = PromptBuilder({"file": str(path), "suffix": "hq"})
    assert builder.build("diningtable", [], np.random.default_rng(0))[0] == "a table set for dinner, hq"
    assert builder.build("car", [], np.random.default_rng(0))[0] == "a car in the snow, hq"
    assert builder.build("boat", [], np.random.default_rng(0))[0] == "something nice, hq"
    path.write_text(json.dumps({"car": ["a car in the snow"]}))
    assert "boat" in PromptBuilder({"file": str(path)}).build("boat", [], np.random.default_rng(0))[0]
    with pytest.raises(ValueError, match="no prompts for category 'boat'"):
        PromptBuilder({"file": str(path), "fallback": "error"}).build("boat", [], np.random.default_rng(0))


def test_bad_config_is_named(tmp_path):
    with pytest.raises(ValueError, match="prompts.templatez"):
        PromptBuilder({"templatez": []})
    with pytest.raises(ValueError, match="unknown slot"):
        PromptBuilder({"templates": ["a {thing}"]})
    with pytest.raises(ValueError, match="prompts.tag_probability"):
        PromptBuilder({"tag_probability": 2})
    with pytest.raises(ValueError, match="prompts.llm.modle"):
        PromptBuilder({"llm": {"modle": "x"}})
    (tmp_path / "p.txt").write_text("x\n")
    with pytest.raises(ValueError, match="give one"):
        PromptBuilder({"file": str(tmp_path / "p.txt"), "llm": {"model": "x"}})
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="empty.txt: the prompt file holds no prompts"):
        PromptBuilder({"file": str(tmp_path / "empty.txt")})
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        PromptBuilder().build("car", [], 3)


def test_clean_generated_text():
    assert clean_generated_text('\n\n1. "A red car parked by the sea at dawn."\nmore') == \
        "A red car parked by the sea at dawn."
    assert clean_generated_text("Caption: a bus\ufffd\ufffd in town") == "a bus in town"
    assert clean_generated_text("\n \ufffd 12 ..") == ""
    assert clean_generated_text("word " * 80, max_words=5) == "word word word word word"


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_local_llm_generates_caches_and_resumes(tmp_path, arch):
    model = build_tiny_text_model(tmp_path / "llm", arch=arch)
    cache = tmp_path / "run" / "llm_prompts.json"
    cfg = {"llm": {"model": str(model), "num_prompts": 5, "max_new_tokens": 10, "seed": 3, "cache": str(cache)}}
    builder = PromptBuilder(cfg)
    first = [builder.build(c, [], np.random.default_rng(i)) for i, c in enumerate(["car", "boat", "car"])]
    assert builder.llm.generated_categories == ["car", "boat"]  # one generation per category
    doc = json.loads(cache.read_text())
    assert set(doc) == {"_meta", "car", "boat"} and all(len(doc[c]) == 5 for c in ("car", "boat"))
    assert doc["_meta"]["model"] == str(model) and doc["_meta"]["seed"] == 3
    for (text, negative), cat in zip(first, ["car", "boat", "car"]):
        assert text[: -len(", best quality, extremely detailed")] in doc[cat]
        assert cat in text.lower() and "lowres" in negative
    # a second builder (another worker, a resumed run) asked in another order gets the same prompts
    other = PromptBuilder({"llm": {**cfg["llm"], "cache": None}})
    assert other.llm.prompts_for("boat") == doc["boat"] and other.llm.prompts_for("car") == doc["car"]
    # resuming from the cache needs no model at all
    shutil.rmtree(model)
    resumed = PromptBuilder(cfg)
    assert [resumed.build(c, [], np.random.default_rng(i)) for i, c in enumerate(["car", "boat", "car"])] == first
    assert resumed.llm.generated_categories == []
    # the cache is a prompt file
    assert load_prompt_file(cache)["car"] == doc["car"]
    # other settings do not reuse it (and the model is gone): a clear error naming the key
    with pytest.raises(ValueError, match="prompts.llm.model"):
        PromptBuilder({"llm": {**cfg["llm"], "num_prompts": 6}}).build("car", [], np.random.default_rng(0))


def test_subtypes_only_where_the_tags_say_so():
    """A car CAD without tags is never a "station wagon" or a "sedan"; a tagged one is named by its tag."""
    builder = PromptBuilder({"attribute_probability": 0.0})
    subtypes = load_vocabulary()["categories"]["car"]["subtypes"]
    untagged = prompts(builder, "car", 60)
    assert not any(re.search(rf"\b{re.escape(s)}\b", t) for t in untagged for s in subtypes)
    tagged = prompts(PromptBuilder({"attribute_probability": 0.0, "tag_probability": 1.0}), "car", 20,
                     ["station wagon"])
    assert all("a station wagon" in t and "station wagon car" not in t for t in tagged)
