"""The choices the package's layers accept, kept apart from the layers so that the settings
(:mod:`tf_bimodal.config`) and the command line check them before TensorFlow starts.

The layers own these lists: :class:`tf_bimodal.layers.embracenet.EmbraceNet` and
:func:`tf_bimodal.layers.ivdnet_blocks.apply_contraction_block` check their arguments against
them, and the settings import them from here. This module imports nothing.
"""

EMBRACENET_INFERENCE_MODES = ("sample", "expected", "mc")
"""EmbraceNet at inference (§3.3.1, docs/embracenet_inference.md): ``sample`` draws the
modality of each feature per call (the reference code), ``expected`` takes the expected value
of the embracement, ``mc`` averages the decision over seeded draws."""

CONTRACTION_BLOCKS = ("conv_bn_relu", "ivdnet")
"""The block of each level of a contraction path (§3.2): U-Net's two 3x3 convolutions with
batch normalisation and ReLU, or IVD-Net's Inception-like dilated residual block."""
