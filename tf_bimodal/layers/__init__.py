"""Custom Keras layers (all registered serializable under the ``tf_bimodal`` package)."""

from tf_bimodal.layers.embracenet import EmbraceNet
from tf_bimodal.layers.adaptive_pooling import AdaptiveAveragePooling2D
from tf_bimodal.layers.image_normalization import ImageNormalization
from tf_bimodal.layers.soft_voting import SoftVoting
