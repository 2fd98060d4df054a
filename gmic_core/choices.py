"""Vocabularies that command lines offer as choices, in a module that imports nothing, so that
``gmic --help`` builds its parser without torch, numpy or pydicom."""

from __future__ import annotations

from typing import Literal

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")
# "auto": the precision gmic_core.inference.resolve_precision picks for the device; every entry point's default.
PrecisionChoice = Literal["auto", "fp32", "bf16", "fp16"]
PRECISION_CHOICES: tuple[PrecisionChoice, ...] = ("auto", *PRECISIONS)
DEFAULT_PRECISION: PrecisionChoice = "auto"
# gmic_core.imaging.layouts.LayoutKind, spelled out (tests/core/test_layouts.py checks that the two agree).
LAYOUTS = ("cbis-ddsm", "vindr-mammo", "cmmd", "inbreast")
