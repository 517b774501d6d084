"""Wizards: the colour-scale wizard of pwem, registered for the DeepRes viewer."""
from pwem.wizards.wizard import ColorScaleWizardBase

from .viewers import DeepResViewer


class DeepResColorScaleWizard(ColorScaleWizardBase):
    _targets = ColorScaleWizardBase.defineTargets(DeepResViewer)
