"""Every term of the ANLCL objective, one module each (Chang et al. TPAMI 2023; Ye et al. CVPR 2022)."""
from .adversarial import lsgan_discriminator, lsgan_generator
from .asymmetric import asymmetric_loss, choose_eta, dispersion, patch_entropy
from .consistency import self_consistency, sparsity
from .layer_contrast import LayerContrast
from .location_contrast import LocationContrast
from .nce import info_nce

__all__ = ["LayerContrast", "LocationContrast", "asymmetric_loss", "choose_eta", "dispersion", "info_nce",
           "lsgan_discriminator", "lsgan_generator", "patch_entropy", "self_consistency", "sparsity"]
