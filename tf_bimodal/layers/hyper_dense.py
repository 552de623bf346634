"""The hyper-densely connected multimodal contraction path (paper §3.2.2, Fig. 2b; IVD-Net).

IVD-Net (Dolz et al. 2018) gives each imaging modality its own U-Net contraction path and
connects the paths *hyper-densely*: from the second level on, every path receives the
feature maps of all paths of the level above, concatenated, so each path can learn from the
relations between modalities; IVD-Net's input of a level also holds the input of the level
above (dense across levels). Paper §3.2.2 adopts this contraction path for W-MM-U-Net.
"""

from __future__ import annotations

import keras

from tf_bimodal.layers.ivdnet_blocks import apply_contraction_block
from tf_bimodal.layers.unet_blocks import apply_down_sample


def apply_hyper_dense_contraction(
    paths, stackwise_num_filters, use_batch_norm: bool = True, dense_across_levels: bool = False,
    block: str = "conv_bn_relu",
):
    """Build one contraction path per modal input, hyper-densely connected (§3.2.2).

    Level 1: path ``p`` convolves its own modal input (the contraction ``block``, layers
    ``path{p}_level1_conv1`` ...). Level ``l > 1``: every path's level-``l - 1`` output is
    max-pooled (``path{p}_level{l-1}_pool``) and all of them are concatenated
    (``level{l}_hyper_dense_concat``); each path convolves that shared concatenation with
    its own weights (``path{p}_level{l}_conv1`` ...). After the last level the pooled
    outputs of all paths are concatenated once more (``bottleneck_hyper_dense_concat``):
    the expansion-path input of Fig. 2c.

    IVD-Net also carries each level's *input* into the next level's input (dense over levels
    as well as over paths): ``dense_across_levels=True`` does that, making the concatenation
    at level ``l + 1`` hold the pooled level-``l`` outputs of all paths and the pooled
    level-``l`` input (layers ``level{l}_input_pool``), from level 3 on as IVD-Net (level 2
    reads the paths' level-1 outputs only). With P = 4 paths of ``F, 2F, 4F, 8F`` filters
    the inputs of levels 2, 3, 4 and of the bottleneck then hold 4F, 12F, 28F and 60F
    channels, IVD-Net's widths. IVD-Net takes a centre crop of the carried input, which
    keeps the middle of the field of view at full resolution, misaligned with the pooled
    features beside it; here it is max-pooled like them, so every channel of a level's
    input covers the same pixels. The option is off by default, which keeps the cost of P
    paths near that of P U-Net encoders. IVD-Net further rotates the order of the
    concatenated paths per path; that permutes input channels, which a learned convolution
    absorbs, so it is not reproduced.

    Args:
        paths: list of P tensors (batch, H, W, C_p), one per modal input; paths are numbered
            from 1 in layer names.
        stackwise_num_filters: filters of every path at each level (level 1 first).
        use_batch_norm: batch normalization after each convolution.
        dense_across_levels: also carry each level's (shared) input into the next level.
        block: the block of every level, ``"conv_bn_relu"`` (U-Net) or ``"ivdnet"``
            (:func:`~tf_bimodal.layers.ivdnet_blocks.apply_dilated_inception_block`).

    Returns:
        ``(features, bottleneck_input)``: ``features[l - 1][p - 1]`` is path ``p``'s output at
        level ``l`` (full resolution of that level, before pooling), the skip-connection
        source; ``bottleneck_input`` is the concatenated, pooled deepest features.
    """
    if not paths:
        raise ValueError("apply_hyper_dense_contraction: needs at least one modal path, got none")
    num_paths = len(paths)
    num_levels = len(stackwise_num_filters)
    features = []
    level_inputs = list(paths)
    for level, filters in enumerate(stackwise_num_filters, start=1):
        outputs = [
            apply_contraction_block(
                level_inputs[index], filters, use_batch_norm, f"path{index + 1}_level{level}", block
            )
            for index in range(num_paths)
        ]
        features.append(outputs)
        pooled = [
            apply_down_sample(output, name=f"path{index + 1}_level{level}")
            for index, output in enumerate(outputs)
        ]
        if dense_across_levels and level > 1:
            pooled.append(keras.layers.MaxPooling2D(2, name=f"level{level}_input_pool")(level_inputs[0]))
        if len(pooled) == 1:
            shared = pooled[0]
        else:
            concat_name = (
                "bottleneck_hyper_dense_concat" if level == num_levels else f"level{level + 1}_hyper_dense_concat"
            )
            shared = keras.layers.Concatenate(name=concat_name)(pooled)
        level_inputs = [shared] * num_paths
    return features, shared
