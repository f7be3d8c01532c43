"""Text prompts for ControlNet generation (3D-DST): templates, prompt files, or a local language model.

`PromptBuilder(config_block).build(category, tags, rng) -> (prompt, negative_prompt)` is the one
entry point. Where the prompts come from depends on the block:

- templates (default): a per-category vocabulary (`prompt_templates.yaml`: synonyms, attributes,
  scenes, plus shared styles, lighting and detail phrases), mixed with the asset's own tags
  (ShapeNet synset names, Objaverse tags). `templates: dst3d` gives the released 3D-DST prompt
  ("An image of <name>, best quality, extremely detailed").
- `file: <path>`: a `.txt` file with one prompt per line (used for every category; `{object}` and
  `{category}` are filled in) or a `.json` file `{category: [prompts]}` (e.g. written by a language
  model; a `"*"` entry serves any category, keys starting with `_` are metadata).
- `llm: {model: <id or path>, ...}`: prompts written by a local `transformers` text-generation model,
  `num_prompts` per category, generated once with a per-category seed and cached in a JSON prompt
  file (`cache`), so a resumed run reads them instead of generating again.

Every choice is drawn from the `numpy.random.Generator` passed to `build`, so a sample's prompt is a
function of its rng state: the same seed gives the same prompt.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from aware3d_utils import atomic_write_text, require

__all__ = [
    "PromptBuilder",
    "LLMPromptGenerator",
    "canonical_category",
    "clean_generated_text",
    "load_prompt_file",
    "load_vocabulary",
    "sanitize_tags",
    "build_tiny_text_model",
    "PROMPT_KEYS",
    "LLM_KEYS",
]

log = logging.getLogger(__name__)

VOCABULARY_FILE = Path(__file__).with_name("prompt_templates.yaml")

# Keys of the prompt config block and of its `llm` sub-block (anything else is an error naming it).
PROMPT_KEYS = frozenset({
    "templates", "styles", "lighting", "details", "scenes", "synonyms", "attributes", "attribute_probability",
    "use_tags", "tag_probability", "suffix", "negative_prompt", "file", "fallback", "llm", "vocabulary",
})
LLM_KEYS = frozenset({
    "model", "num_prompts", "max_new_tokens", "temperature", "top_p", "seed", "cache", "device", "dtype",
    "instruction", "max_words",
})
_SLOTS = ("style", "a_object", "object", "scene", "lighting", "details", "category")
DEFAULT_INSTRUCTION = (
    "Write one vivid sentence describing a realistic photograph of {a_object}. Say where it is and how it is lit. "
    "Answer with the sentence only."
)


# ----------------------------------------------------------------------------- vocabulary
@functools.lru_cache(maxsize=8)
def _read_yaml(path: str) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the prompt vocabulary: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the prompt vocabulary must be a mapping, got {type(data).__name__}")
    return data


def load_vocabulary(path: str | os.PathLike | None = None) -> dict:
    """The prompt vocabulary (a fresh copy): the built-in `prompt_templates.yaml` or a YAML file of the same form."""
    return json.loads(json.dumps(_read_yaml(str(path or VOCABULARY_FILE))))


def canonical_category(name: str, aliases: Mapping[str, str] | None = None) -> str:
    """Lower case, spaces/hyphens to underscores, and aliases resolved ("table" -> "diningtable", "mug" -> "cup")."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"category must be a non-empty string, got {name!r}")
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    aliases = load_vocabulary()["aliases"] if aliases is None else aliases
    return aliases.get(key, key)


def _noun(category: str) -> str:
    return category.replace("_", " ")


def _article(phrase: str) -> str:
    return f"an {phrase}" if phrase[:1].lower() in "aeiou" else f"a {phrase}"


def _pick(seq: Sequence, rng: np.random.Generator):
    return seq[int(rng.integers(len(seq)))]


_TAG_CLEAN = re.compile(r"[^a-z' \-]+")


def sanitize_tags(tags, stoplist: Sequence[str] = ()) -> list[str]:
    """Asset tags as short lower-case phrases, in order, without duplicates or noise.

    Accepts a list of strings (each may hold several comma/semicolon-separated names, as ShapeNet's
    synset names "car,auto,automobile" do). Keeps letters, spaces, hyphens and apostrophes; drops
    words from `stoplist`, URLs, tags of more than three words or 30 characters, and leftovers
    shorter than two letters.
    """
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    stop = {s.lower() for s in stoplist}
    out: list[str] = []
    for raw in tags:
        for piece in re.split(r"[,;|]", str(raw)):
            text = piece.strip().lower()
            if not text or "://" in text or text.startswith("www.") or text in stop:
                continue
            text = _TAG_CLEAN.sub(" ", text.replace("_", " "))
            text = re.sub(r"\s+", " ", text).strip(" -'")
            if len(text) < 2 or text in stop or len(text) > 30 or len(text.split()) > 3:
                continue
            if text not in out:
                out.append(text)
    return out


# ----------------------------------------------------------------------------- prompt files
def load_prompt_file(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a prompt file: `{category: [prompts]}`; a `.txt` file gives `{"*": [lines]}`.

    .txt: one prompt per line; empty lines and lines starting with `#` are skipped.
    .json: `{category: [prompts] | prompt}`; keys are canonicalised (aliases resolved); keys that
    start with `_` (metadata, e.g. an LLM cache's `_meta`) are ignored.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the prompt file: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a JSON prompt file must map categories to lists of prompts")
        out: dict[str, list[str]] = {}
        for key, value in data.items():
            if not isinstance(key, str) or key.startswith("_"):
                continue
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"{path}: entry {key!r} must be a string or a list of strings")
            values = [v.strip() for v in values if v.strip()]
            if values:
                name = "*" if key == "*" else canonical_category(key)
                out.setdefault(name, []).extend(values)
        if not out:
            raise ValueError(f"{path}: the prompt file holds no prompts")
        return out
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ValueError(f"{path}: the prompt file holds no prompts")
    return {"*": lines}


def _fill(prompt: str, name: str, obj: str) -> str:
    """Fill `{object}`, `{a_object}`, `{category}` (the category's readable name) in a prompt from a
    file; other braces stay as written."""
    for slot, value in (("{object}", obj), ("{a_object}", _article(obj)), ("{category}", name)):
        prompt = prompt.replace(slot, value)
    return prompt


# ----------------------------------------------------------------------------- LLM prompts
def clean_generated_text(text: str, max_words: int = 50) -> str:
    """The first usable line of a language model's answer, as a one-line prompt.

    Drops list markers, surrounding quotes, control characters and a leading "Caption:"-style label,
    and keeps at most `max_words` words (CLIP reads 77 tokens).
    """
    # U+FFFD marks bytes that did not decode (a byte-level model cut inside a character).
    text = "".join(ch if (ch.isprintable() or ch == "\n") and ch != "\ufffd" else " " for ch in text)
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", line)
        line = re.sub(r"^\s*(?:caption|prompt|description|answer)\s*:\s*", "", line, flags=re.IGNORECASE)
        line = re.sub(r"\s+", " ", line).strip().strip("\"'`").strip()
        if re.search(r"[A-Za-z]{2,}", line):
            return " ".join(line.split()[:max_words]).rstrip(",;:")
    return ""


def _category_seed(seed: int, category: str) -> int:
    """A seed per (run seed, category) that does not depend on which categories came first."""
    return (int(seed) * 1_000_003 + zlib.crc32(category.encode("utf-8"))) % (2**31 - 1)


class LLMPromptGenerator:
    """Prompts written by a local `transformers` causal language model, cached in a JSON prompt file.

    config: the `llm` block: model (id or local path; loaded with from_pretrained, offline when
    HF_HUB_OFFLINE=1), num_prompts per category (16), max_new_tokens (48), temperature (0.9),
    top_p (0.95), seed (0), cache (JSON path or None), device (None: cuda when available), dtype
    ("auto": float16 on CUDA, float32 on CPU), instruction (a format string with {a_object}, {object},
    {category}), max_words (50).

    Each category is generated in one sampling call seeded by (seed, category), so the result does
    not depend on the order categories are asked for. The cache is `{"_meta": {...}, category: [..]}`
    (a valid prompt file); entries written under other settings are ignored and regenerated.
    """

    def __init__(self, config: Mapping, vocabulary: Mapping | None = None):
        if not isinstance(config, Mapping):
            raise ValueError(f"prompts.llm must be a mapping, got {type(config).__name__}")
        unknown = sorted(set(config) - LLM_KEYS)
        if unknown:
            raise ValueError(f"prompts.llm.{unknown[0]}: unknown key (known: {', '.join(sorted(LLM_KEYS))})")
        if not config.get("model"):
            raise ValueError("prompts.llm.model: required (a model id or a local folder)")
        self.model_name = str(config["model"])
        self.num_prompts = _positive_int(config.get("num_prompts", 16), "prompts.llm.num_prompts")
        self.max_new_tokens = _positive_int(config.get("max_new_tokens", 48), "prompts.llm.max_new_tokens")
        self.max_words = _positive_int(config.get("max_words", 50), "prompts.llm.max_words")
        self.temperature = _positive_float(config.get("temperature", 0.9), "prompts.llm.temperature")
        self.top_p = _positive_float(config.get("top_p", 0.95), "prompts.llm.top_p")
        if self.top_p > 1:
            raise ValueError(f"prompts.llm.top_p: must be in (0, 1], got {self.top_p}")
        self.seed = int(config.get("seed", 0))
        self.instruction = str(config.get("instruction", DEFAULT_INSTRUCTION))
        self.cache_path = Path(config["cache"]) if config.get("cache") else None
        self.device = config.get("device")
        self.dtype = str(config.get("dtype", "auto"))
        self.vocabulary = vocabulary or load_vocabulary()
        self._prompts: dict[str, list[str]] = {}
        self._model = None
        self._tokenizer = None
        self.generated_categories: list[str] = []  # categories generated (not read from the cache) here
        self._read_cache()

    @property
    def meta(self) -> dict:
        """The settings that determine the generated prompts (stored in the cache)."""
        return {"model": self.model_name, "num_prompts": self.num_prompts, "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature, "top_p": self.top_p, "seed": self.seed,
                "instruction": self.instruction, "max_words": self.max_words}

    def _read_cache(self) -> dict[str, list[str]]:
        if self.cache_path is None or not self.cache_path.is_file():
            return {}
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{self.cache_path}: the LLM prompt cache cannot be read: {exc}") from exc
        if not isinstance(data, dict) or data.get("_meta") != self.meta:
            log.warning("%s: LLM prompt cache was written with other settings; regenerating", self.cache_path)
            return {}
        found = {k: v for k, v in data.items() if not k.startswith("_") and isinstance(v, list)
                 and len(v) == self.num_prompts and all(isinstance(s, str) for s in v)}
        for k, v in found.items():
            self._prompts.setdefault(k, v)
        return found

    def _write_cache(self) -> None:
        if self.cache_path is None:
            return
        # Merge with what other workers wrote meanwhile (generation is deterministic, so entries agree).
        merged = dict(self._read_cache())
        merged.update(self._prompts)
        doc = {"_meta": self.meta, **{k: merged[k] for k in sorted(merged)}}
        atomic_write_text(self.cache_path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")

    def prompts_for(self, category: str) -> list[str]:
        """The `num_prompts` prompts for `category` (generated on first use, then cached)."""
        category = canonical_category(category, self.vocabulary["aliases"])
        if category not in self._prompts:
            self._prompts[category] = self._generate(category)
            self.generated_categories.append(category)
            self._write_cache()
        return self._prompts[category]

    def _load(self):
        if self._model is not None:
            return
        transformers = require("transformers")
        torch = require("torch")
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtypes = {"auto": torch.float16 if str(device).startswith("cuda") else torch.float32,
                  "fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16,
                  "bfloat16": torch.bfloat16, "fp32": torch.float32, "float32": torch.float32}
        if self.dtype not in dtypes:
            raise ValueError(f"prompts.llm.dtype: must be one of {sorted(dtypes)}, got {self.dtype!r}")
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_name)
            # transformers >= 4.56 calls it `dtype`; older releases only know `torch_dtype`
            major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
            key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
            model = transformers.AutoModelForCausalLM.from_pretrained(self.model_name, **{key: dtypes[self.dtype]})
        except (OSError, ValueError) as exc:
            raise ValueError(f"prompts.llm.model: cannot load {self.model_name!r} (offline runs need a local "
                             f"folder or a model already in the Hugging Face cache): {exc}") from exc
        self._device = torch.device(device)
        self._model = model.to(self._device).eval()
        self._tokenizer = tokenizer

    def _instruction_ids(self, category: str):
        vocab = self.vocabulary
        entry = vocab["categories"].get(category, {})
        noun = (entry.get("synonyms") or [_noun(category)])[0]
        text = self.instruction.format(a_object=_article(noun), object=noun, category=_noun(category))
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True)["input_ids"]
        else:
            ids = tok(text + "\n", return_tensors="pt")["input_ids"]
        return ids, noun

    def _generate(self, category: str) -> list[str]:
        torch = require("torch")
        self._load()
        ids, noun = self._instruction_ids(category)
        ids = ids.to(self._device)
        tok = self._tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        devices = [self._device.index or 0] if self._device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(_category_seed(self.seed, category))
            with torch.no_grad():
                out = self._model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                    temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                    num_return_sequences=self.num_prompts, pad_token_id=pad)
        texts = tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
        entry = self.vocabulary["categories"].get(category, {})
        names = [s.lower() for s in entry.get("synonyms", [])] + [_noun(category)]
        prompts = []
        for text in texts:
            line = clean_generated_text(text, self.max_words)
            if not any(n in line.lower() for n in names):
                # A prompt that never names the object lets the image drift from the condition.
                line = f"{_article(noun)}, {line}" if line else f"a photo of {_article(noun)}"
            prompts.append(line)
        log.info("generated %d prompts for %s with %s", len(prompts), category, self.model_name)
        return prompts


# ----------------------------------------------------------------------------- the builder
def _positive_int(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{key}: must be a positive integer, got {value!r}")
    return int(value)


def _positive_float(value, key: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: must be a number, got {value!r}") from None
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"{key}: must be a positive number, got {value!r}")
    return out


def _probability(value, key: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= out <= 1.0:
        raise ValueError(f"{key}: must be in [0, 1], got {value!r}")
    return out


def _string_list(value, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{key}: must be a non-empty list of strings")
    return [v.strip() for v in value]


class PromptBuilder:
    """Prompts and negative prompts per sample (see the module docstring for the sources).

    config_block keys (all optional; unknown keys are errors naming the key):
      templates: "default" | "dst3d" | a list of format strings with {style} {a_object} {object} {scene}
        {lighting} {details} {category};
      styles, lighting, details: lists replacing the built-in phrases;
      scenes, synonyms, attributes: {category: [..]} replacing a category's entries (new categories ok);
      attribute_probability (0.5): chance of an adjective ("red", "wooden") before the object;
      use_tags (True), tag_probability (0.7): chance of naming the object by one of the asset's tags;
      suffix: appended after a comma to every prompt (default "best quality, extremely detailed");
      negative_prompt: the negative prompt for every sample;
      file: a prompt file (.txt lines or .json {category: [prompts]}); fallback: "templates" (default)
        or "error" for categories the file lacks;
      llm: {model, num_prompts, max_new_tokens, temperature, top_p, seed, cache, device, dtype,
        instruction, max_words} (see LLMPromptGenerator);
      vocabulary: a YAML file replacing the built-in `prompt_templates.yaml`.
    """

    def __init__(self, config_block: Mapping | None = None):
        cfg = dict(config_block or {})
        unknown = sorted(set(cfg) - PROMPT_KEYS)
        if unknown:
            raise ValueError(f"prompts.{unknown[0]}: unknown key (known: {', '.join(sorted(PROMPT_KEYS))})")
        vocab = load_vocabulary(cfg.get("vocabulary"))
        for key in ("templates", "styles", "lighting", "details", "categories", "generic", "aliases"):
            if key not in vocab:
                raise ValueError(f"{cfg.get('vocabulary') or VOCABULARY_FILE}: the vocabulary lacks {key!r}")
        templates = cfg.get("templates", "default")
        if templates == "default":
            self.templates = _string_list(vocab["templates"], "prompts.templates")
        elif templates == "dst3d":
            self.templates = _string_list(vocab.get("dst3d_templates", ["An image of {category}"]), "prompts.templates")
        else:
            self.templates = _string_list(templates, "prompts.templates")
        for t in self.templates:
            try:
                t.format(**{s: "" for s in _SLOTS})
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"prompts.templates: {t!r} has an unknown slot {exc} "
                                 f"(slots: {', '.join(_SLOTS)})") from None
        self.styles = _string_list(cfg.get("styles", vocab["styles"]), "prompts.styles")
        self.lighting = _string_list(cfg.get("lighting", vocab["lighting"]), "prompts.lighting")
        self.details = _string_list(cfg.get("details", vocab["details"]), "prompts.details")
        self.aliases = dict(vocab["aliases"])
        self.categories: dict[str, dict] = {k: dict(v) for k, v in vocab["categories"].items()}
        self.generic = dict(vocab["generic"])
        for field in ("scenes", "synonyms", "attributes"):
            block = cfg.get(field)
            if block is None:
                continue
            if not isinstance(block, Mapping):
                raise ValueError(f"prompts.{field}: must map categories to lists of strings")
            for cat, values in block.items():
                name = canonical_category(cat, self.aliases)
                self.categories.setdefault(name, {})[field] = _string_list(values, f"prompts.{field}.{cat}")
        self.attribute_probability = _probability(cfg.get("attribute_probability", 0.5),
                                                  "prompts.attribute_probability")
        self.use_tags = bool(cfg.get("use_tags", True))
        self.tag_probability = _probability(cfg.get("tag_probability", 0.7), "prompts.tag_probability")
        self.tag_stoplist = list(vocab.get("tag_stoplist", []))
        self.suffix = str(cfg.get("suffix", vocab.get("suffix", ""))).strip()
        self.negative_prompt = " ".join(str(cfg.get("negative_prompt", vocab.get("negative_prompt", ""))).split())
        self.fallback = cfg.get("fallback", "templates")
        if self.fallback not in ("templates", "error"):
            raise ValueError(f"prompts.fallback: must be 'templates' or 'error', got {self.fallback!r}")
        if cfg.get("file") and cfg.get("llm"):
            raise ValueError("prompts.file and prompts.llm: give one (an LLM's cache is itself a prompt file)")
        self.file = Path(cfg["file"]) if cfg.get("file") else None
        self.file_prompts = load_prompt_file(self.file) if self.file else None
        self.llm = LLMPromptGenerator(cfg["llm"], vocab) if cfg.get("llm") else None

    @property
    def source(self) -> str:
        return "llm" if self.llm else "file" if self.file_prompts else "templates"

    def describe(self) -> dict:
        """What produced the prompts (for a run's manifest)."""
        out = {"source": self.source, "suffix": self.suffix, "negative_prompt": self.negative_prompt}
        if self.file:
            out["file"] = str(self.file)
        if self.llm:
            out["llm"] = self.llm.meta | {"cache": str(self.llm.cache_path) if self.llm.cache_path else None}
        return out

    # -- pieces
    def _entry(self, category: str) -> dict:
        entry = dict(self.generic)
        entry.setdefault("synonyms", [_noun(category)])
        entry.update(self.categories.get(category, {}))
        if not entry.get("synonyms"):
            entry["synonyms"] = [_noun(category)]
        return entry

    def object_phrase(self, category: str, tags: Sequence[str] | None, rng: np.random.Generator) -> str:
        """The object as named in a prompt: a synonym (never a subtype the asset's tags do not name),
        possibly an asset tag, possibly an attribute."""
        category = canonical_category(category, self.aliases)
        entry = self._entry(category)
        synonyms = entry["synonyms"]
        noun = _pick(synonyms, rng)
        clean = sanitize_tags(tags, self.tag_stoplist) if self.use_tags else []
        if clean and rng.random() < self.tag_probability:
            tag = _pick(clean, rng)
            names = list(synonyms) + list(entry.get("subtypes") or [])
            heads = {s.split()[-1].lower() for s in names} | {_noun(category).split()[-1]}
            # "sports car" and "station wagon" name the object already; "red" qualifies it.
            noun = tag if tag.split()[-1] in heads or any(s.lower() in tag for s in names) else f"{tag} {noun}"
        attributes = entry.get("attributes") or []
        if attributes and rng.random() < self.attribute_probability:
            attribute = _pick(attributes, rng)
            if attribute.lower() not in noun.lower():
                noun = f"{attribute} {noun}"
        return noun

    def _template_prompt(self, category: str, tags, rng: np.random.Generator) -> str:
        entry = self._entry(category)
        template = _pick(self.templates, rng)
        obj = self.object_phrase(category, tags, rng)
        return template.format(style=_pick(self.styles, rng), a_object=_article(obj), object=obj,
                               scene=_pick(entry.get("scenes") or self.generic["scenes"], rng),
                               lighting=_pick(self.lighting, rng), details=_pick(self.details, rng),
                               category=entry["synonyms"][0])

    def _with_suffix(self, prompt: str) -> str:
        prompt = " ".join(prompt.split()).strip().rstrip(",")
        return f"{prompt}, {self.suffix}" if self.suffix else prompt

    # -- the interface
    def build(self, category: str, tags: Sequence[str] | None, rng: np.random.Generator) -> tuple[str, str]:
        """(prompt, negative_prompt) for one sample of `category` whose asset carries `tags`.

        rng: the sample's generator; the prompt is a deterministic function of its state.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        category = canonical_category(category, self.aliases)
        if self.llm is not None:
            prompt = _pick(self.llm.prompts_for(category), rng)
        elif self.file_prompts is not None:
            choices = self.file_prompts.get(category) or self.file_prompts.get("*")
            if choices:
                prompt = _fill(_pick(choices, rng), self._entry(category)["synonyms"][0],
                               self.object_phrase(category, tags, rng))
            elif self.fallback == "error":
                raise ValueError(f"{self.file}: no prompts for category {category!r} (and fallback is 'error')")
            else:
                prompt = self._template_prompt(category, tags, rng)
        else:
            prompt = self._template_prompt(category, tags, rng)
        return self._with_suffix(prompt), self.negative_prompt


# ----------------------------------------------------------------------------- a tiny local LLM for tests
def build_tiny_text_model(folder: str | os.PathLike, arch: str = "gpt2", seed: int = 0) -> Path:
    """Save a tiny randomly initialised causal LM with a byte-level tokenizer into `folder`; return it.

    For tests and demos of the `llm` plumbing without a model hub: load it by path like a real model
    (`llm: {model: <folder>}`). arch: "gpt2" or "llama". Its output is gibberish by design.
    """
    transformers = require("transformers")
    torch = require("torch")
    from tokenizers.pre_tokenizers import ByteLevel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
    vocab["<|endoftext|>"] = len(vocab)
    eos = vocab["<|endoftext|>"]
    # transformers 5 ignores vocab_file/merges_file here: pass the vocabulary itself.
    tokenizer = transformers.GPT2Tokenizer(vocab=vocab, merges=[], unk_token="<|endoftext|>",
                                           bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "gpt2":
            config = transformers.GPT2Config(vocab_size=len(vocab), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                                             bos_token_id=eos, eos_token_id=eos)
            model = transformers.GPT2LMHeadModel(config)
        elif arch == "llama":
            config = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                              max_position_embeddings=256, bos_token_id=eos, eos_token_id=eos,
                                              pad_token_id=eos)
            model = transformers.LlamaForCausalLM(config)
        else:
            raise ValueError(f"arch must be 'gpt2' or 'llama', got {arch!r}")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
