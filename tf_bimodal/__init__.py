"""tf_bimodal: B-mode + strain-elastography breast ultrasound segmentation and classification.

A TensorFlow/Keras implementation of Misra et al. 2022, "Deep learning-based multimodal fusion
network for segmentation and classification of breast cancers using B-mode and elastography
ultrasound images" (Bioeng. Transl. Med., e10480). See ``docs/architecture.md`` for how the
parts fit together; imports run one way, from the top of this list to the bottom.

Modules and subpackages:
    tf_bimodal.cli: the ``tf-bimodal`` command (``python -m tf_bimodal``); it only parses.
    tf_bimodal.workflow: entry points, ``run`` (what ``run_experiments.py`` calls) and
        ``describe_data``; a preset name becomes an ``ExperimentConfig`` here, once.
    tf_bimodal.export: SavedModels of the fold ensembles and the end-to-end CAD pipeline, and
        prediction on new patients' files with an exported pipeline.
    tf_bimodal.experiments: the cross-validation driver, the segmentation, classification and
        grid-search runs, the protocol (segment -> crop -> classify) and its report.
    tf_bimodal.evaluation: statistics over folds, the fold union, patient votes, the Youden
        threshold, paired t-tests, predictions files and every figure.
    tf_bimodal.training: compiling, fitting and applying both tasks, losses, metrics,
        callbacks, tf.distribute and precision, TensorBoard, the KerasTuner grid.
    tf_bimodal.models: the segmenters (U-Net, MM-U-Net, W-MM-U-Net) and classifiers (VGG-16,
        MFF with EmbraceNet, the integration baselines) of Tables 1 and 2.
    tf_bimodal.layers: the custom Keras layers (colour input processing, hyper-dense
        contraction, weighted skip, EmbraceNet, adaptive pooling, normalisation, soft voting).
    tf_bimodal.data: readers (clinical folder, BUSI), source fingerprints, the synthetic
        phantom, the TFDS builder and loader, the ``tf.data`` pipeline, the models' inputs,
        patient-level splits and lesion cropping.
    tf_bimodal.config, tf_bimodal.schema, tf_bimodal.layout, tf_bimodal.io, tf_bimodal.logs:
        the registry of settings and presets, the example format, the results' file names,
        JSON files and progress logging.
"""

__version__ = "0.7.0"

__all__ = ["__version__"]
