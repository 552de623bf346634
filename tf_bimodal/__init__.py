"""tf_bimodal: B-mode + strain-elastography breast ultrasound segmentation and classification.

A TensorFlow/Keras implementation of Misra et al. 2022, "Deep learning-based multimodal fusion
network for segmentation and classification of breast cancers using B-mode and elastography
ultrasound images" (Bioeng. Transl. Med., e10480).

Subpackages:
    tf_bimodal.data: readers (clinical folder, BUSI), the synthetic bimodal phantom, the
        ``tf.data`` input pipeline, patient-level splits and lesion cropping.
"""

__version__ = "0.1.0"
