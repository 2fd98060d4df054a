"""Results as DICOM: an :class:`~gmic_core.inference.ExamResult` and its source images' headers ->
a Mammography CAD SR, a TID 1500 Measurement Report, a Segmentation per view and a Secondary
Capture, built with highdicom. Every coordinate is in its source file's own pixel frame."""
