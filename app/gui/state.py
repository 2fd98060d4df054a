"""What the reader has chosen to see, in one Qt-free object that widgets subscribe to (STYLE.md 8).

:class:`ViewerState` holds the overlays shown, their opacity, the hybrid weight lambda, the window
adjustment shared by the four views, whether zoom and pan are linked, which view is enlarged and
whether the magnifier is on. Every setter that changes something calls the listeners with the name
of the field that changed, so the display logic is testable without a display.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from gmic_core.imaging import View

Listener = Callable[[str], None]

# Right-dragging by the height of a view changes the window width by this factor (and the level by
# this many window widths): a display choice, close to what PACS viewers do.
DRAG_SENSITIVITY = 2.0
MIN_WIDTH_SCALE = 0.02


class Overlay(StrEnum):
    BENIGN = "benign"  # green saliency map
    MALIGNANT = "malignant"  # red saliency map
    ROIS = "rois"  # the model's ROI boxes with their attention


@dataclass(frozen=True)
class WindowAdjustment:
    """How the reader changed each view's own window: ``preset`` indexes the windows of the file
    (0 is the default one, e.g. NORMAL / HARDER / SOFTER), ``width_scale`` multiplies its width and
    ``level_shift`` moves its centre by that many widths. Shared by the four views, so that a drag
    on one keeps the exam consistent even where the files' windows differ."""

    preset: int = 0
    width_scale: float = 1.0
    level_shift: float = 0.0
    inverted: bool = False

    def dragged(self, dx: float, dy: float) -> WindowAdjustment:
        """After a right-drag by (dx, dy) view sizes: right widens the window, down raises the level
        (the image gets darker), as on most radiology workstations."""
        scale = max(MIN_WIDTH_SCALE, self.width_scale * (1.0 + DRAG_SENSITIVITY * dx))
        return replace(self, width_scale=scale, level_shift=self.level_shift + DRAG_SENSITIVITY * dy)


class ViewerState:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self.overlays: dict[Overlay, bool] = dict.fromkeys(Overlay, True)
        self.opacity = 0.5
        self.hybrid_weight = 0.5  # lambda of the hybrid lambda * reader + (1 - lambda) * model
        self.window = WindowAdjustment()
        self.linked = True
        self.enlarged: View | None = None
        self.magnifier = False

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(field_name)`` on every change; returns the function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _changed(self, name: str) -> None:
        for listener in list(self._listeners):
            listener(name)

    def set_overlay(self, overlay: Overlay, shown: bool) -> None:
        if self.overlays[overlay] != shown:
            self.overlays[overlay] = shown
            self._changed("overlays")

    def toggle_overlay(self, overlay: Overlay) -> None:
        self.set_overlay(overlay, not self.overlays[overlay])

    def set_opacity(self, opacity: float) -> None:
        opacity = min(1.0, max(0.0, opacity))
        if opacity != self.opacity:
            self.opacity = opacity
            self._changed("opacity")

    def set_hybrid_weight(self, weight: float) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"lambda must be in [0, 1], got {weight}")
        if weight != self.hybrid_weight:
            self.hybrid_weight = weight
            self._changed("hybrid_weight")

    def set_window(self, window: WindowAdjustment) -> None:
        if window != self.window:
            self.window = window
            self._changed("window")

    def reset_window(self) -> None:
        self.set_window(WindowAdjustment(inverted=self.window.inverted))

    def toggle_inverted(self) -> None:
        self.set_window(replace(self.window, inverted=not self.window.inverted))

    def set_linked(self, linked: bool) -> None:
        if linked != self.linked:
            self.linked = linked
            self._changed("linked")

    def set_enlarged(self, view: View | None) -> None:
        if view != self.enlarged:
            self.enlarged = view
            self._changed("enlarged")

    def set_magnifier(self, on: bool) -> None:
        if on != self.magnifier:
            self.magnifier = on
            self._changed("magnifier")
