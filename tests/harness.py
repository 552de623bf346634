"""One test harness for every custom Keras layer and model of ``tf_bimodal``.

Modelled on ``keras.src.testing.TestCase.run_layer_test`` and keras-hub's
``TestCase.run_layer_test`` / ``run_model_saving_test``, as plain functions for pytest:

* :func:`run_layer_test`: config round trip, symbolic and eager output shapes, one ``fit``
  step, ``.keras`` save and reload, and output dtypes under mixed-precision policies.
* :func:`run_model_test`: output shapes of a model, and under mixed-precision policies its
  output dtypes and the dtypes of every layer of its graph (nested models included).
* :func:`run_model_saving_test`: config round trip and ``.keras`` save and reload of a model.
* :func:`check_config_round_trip`: ``from_config(get_config())`` and Keras serialization.

Input data follow Keras' convention for layers: an array is the layer's one input, a list its
list input, and a dict the keyword arguments of ``call`` (e.g. ``{"features": [...],
"weights": w}``). A model is called on its input structure as is (a dict is its dict input).

Dtype checks: under ``mixed_float16`` / ``mixed_bfloat16`` (set globally, so the layers a
layer or model creates inside follow it too) every floating output must have the compute
dtype, the dtype the symbolic call promises, and every floating variable must stay float32.
A layer or model that documents another output dtype (e.g. a float32 probability head) is
tested with that ``expected_output_dtype``. The global policy is always restored.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

InputData = Any
"""An array, a list / tuple of them, or a dict of them (possibly nested)."""

MIXED_PRECISION_POLICIES = ("float16", "bfloat16")
"""Compute dtypes checked by default, as the ``mixed_<dtype>`` policies."""


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Set the global dtype policy (``"float16"`` means ``"mixed_float16"``) for a block."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name if name.startswith("mixed_") or name == "float32" else f"mixed_{name}")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def symbolic_inputs(input_data: InputData) -> InputData:
    """``keras.Input`` tensors of the same structure, shapes (batch free) and dtypes."""
    return keras.tree.map_structure(
        lambda x: keras.Input(shape=np.shape(x)[1:], dtype=keras.backend.standardize_dtype(x.dtype)),
        input_data,
    )


def call_layer(layer: keras.layers.Layer, input_data: InputData, **call_kwargs: Any) -> Any:
    """Call ``layer`` on ``input_data``: a dict gives keyword arguments, anything else the input."""
    if isinstance(input_data, Mapping):
        return layer(**input_data, **call_kwargs)
    return layer(input_data, **call_kwargs)


def _is_shape(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(d is None or isinstance(d, int) for d in value)


def _shape_leaves(shapes: Any) -> list[tuple]:
    """The shapes of a structure of shapes, in ``keras.tree.flatten`` order (dict keys sorted)."""
    if _is_shape(shapes):
        return [tuple(shapes)]
    if isinstance(shapes, Mapping):
        return [shape for key in sorted(shapes) for shape in _shape_leaves(shapes[key])]
    return [shape for item in shapes for shape in _shape_leaves(item)]


def _float_leaves(outputs: Any) -> list:
    return [x for x in keras.tree.flatten(outputs) if keras.backend.is_float_dtype(x.dtype)]


def _dtype(x: Any) -> str:
    return keras.backend.standardize_dtype(x.dtype)


def as_json(config: Mapping[str, Any]) -> str:
    """A config as canonical JSON (tuples and lists alike), for comparing configs."""
    return json.dumps(config, sort_keys=True)


def assert_shapes_agree(symbolic: Any, eager: Any, expected: Any = None) -> None:
    """Symbolic and eager outputs have the same structure and agreeing shapes.

    A ``None`` dimension of a symbolic output (the batch, or a side left open) matches any
    size; the eager shapes must match ``expected``, where ``None`` matches any size too.
    ``expected`` is one shape (then every output must have it) or the outputs' structure of
    shapes.
    """
    symbolic_leaves, eager_leaves = keras.tree.flatten(symbolic), keras.tree.flatten(eager)
    assert len(symbolic_leaves) == len(eager_leaves) > 0, (symbolic, eager)
    if expected is None:
        expected_leaves = [None] * len(eager_leaves)
    elif _is_shape(expected):
        expected_leaves = [tuple(expected)] * len(eager_leaves)
    else:
        expected_leaves = _shape_leaves(expected)
        assert len(expected_leaves) == len(eager_leaves), (expected, eager)

    def agree(reference, shape) -> bool:
        return len(reference) == len(shape) and all(r is None or r == d for r, d in zip(reference, shape))

    for sym, eag, exp in zip(symbolic_leaves, eager_leaves, expected_leaves):
        symbolic_shape, eager_shape = tuple(sym.shape), tuple(eag.shape)
        assert agree(symbolic_shape, eager_shape), f"symbolic shape {symbolic_shape} != eager shape {eager_shape}"
        if exp is not None:
            assert agree(exp, eager_shape), f"expected shape {exp}, got {eager_shape} (symbolic {symbolic_shape})"


def assert_output_dtypes(
    eager: Any, expected_dtype: str | Sequence[str | None] | None, compute_dtype: str, symbolic: Any = None
) -> None:
    """Floating eager outputs have their expected dtype (and that of their symbolic twins).

    ``expected_dtype``: ``None`` (the compute dtype), one dtype for every output, or a list
    of them in ``keras.tree.flatten`` order of the outputs (``None`` items: the compute dtype).
    """
    eager_leaves = keras.tree.flatten(eager)
    if expected_dtype is None or isinstance(expected_dtype, str):
        expected = [expected_dtype] * len(eager_leaves)
    else:
        expected = list(expected_dtype)
        assert len(expected) == len(eager_leaves), (expected, eager_leaves)
    for index, (tensor, dtype) in enumerate(zip(eager_leaves, expected)):
        dtype = dtype or compute_dtype
        if keras.backend.is_float_dtype(tensor.dtype):
            assert _dtype(tensor) == dtype, f"output {index}: dtype {_dtype(tensor)}, expected {dtype}"
    if symbolic is not None:
        promised = [_dtype(x) for x in keras.tree.flatten(symbolic)]
        actual = [_dtype(x) for x in eager_leaves]
        assert promised == actual, f"symbolic call promises dtypes {promised}, the eager call gives {actual}"


def assert_float32_variables(layer: keras.layers.Layer) -> None:
    """Mixed precision keeps every floating variable in float32."""
    for variable in layer.weights:
        if keras.backend.is_float_dtype(variable.dtype):
            assert _dtype(variable) == "float32", f"{variable.path}: {_dtype(variable)} under a mixed policy"


def assert_outputs_close(actual: Any, expected: Any, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """Same structure and values within tolerance."""
    actual_leaves, expected_leaves = keras.tree.flatten(actual), keras.tree.flatten(expected)
    assert len(actual_leaves) == len(expected_leaves) > 0
    for a, e in zip(actual_leaves, expected_leaves):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(e), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- config


def check_serialization(instance: keras.layers.Layer) -> dict:
    """``serialize_keras_object(instance)`` survives JSON; a ``tf_bimodal`` class is registered.

    Returns:
        The serialized form, after the JSON round trip.
    """
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(instance)))
    cls = type(instance)
    if cls.__module__.startswith("tf_bimodal"):
        assert serialized["registered_name"] == f"tf_bimodal>{cls.__name__}", serialized["registered_name"]
    return serialized


def check_config_round_trip(instance: keras.layers.Layer) -> keras.layers.Layer:
    """``from_config(get_config())`` gives an equal config, through the JSON form.

    The object is serialized (:func:`check_serialization`) and deserialized, which calls
    ``cls.from_config`` on the config read back from JSON; the rebuilt object has the same
    class and, tuples and lists alike, the same config.

    Returns:
        The rebuilt instance.
    """
    config = as_json(instance.get_config())
    restored = keras.saving.deserialize_keras_object(check_serialization(instance))
    assert type(restored) is type(instance)
    assert as_json(restored.get_config()) == config
    return restored


# --------------------------------------------------------------------------- training


class TrainingProbe(keras.Model):
    """Calls one layer; the loss is the mean square of its floating outputs."""

    def __init__(self, layer: keras.layers.Layer, call_kwargs: Mapping[str, Any]):
        super().__init__(name="training_probe")
        self.probed = layer
        self.call_kwargs = dict(call_kwargs)

    def call(self, inputs, training=None):
        inputs = list(inputs) if isinstance(inputs, tuple) else inputs
        return call_layer(self.probed, inputs, training=training, **self.call_kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return sum(ops.mean(ops.square(ops.cast(t, "float32"))) for t in _float_leaves(y_pred))


def fit_one_step(
    layer: keras.layers.Layer, input_data: InputData, call_kwargs: Mapping[str, Any] | None = None
) -> float:
    """One compiled ``fit`` step of ``layer`` inside a probe model; returns the (finite) loss.

    The step runs in graph mode with ``training=True``. If the layer has trainable weights, at
    least one of them must change.
    """
    probe = TrainingProbe(layer, call_kwargs or {})
    probe.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    call_layer(layer, input_data, **(call_kwargs or {}))  # built, so its weights can be read
    before = [np.array(w) for w in layer.trainable_weights]
    batch = len(keras.tree.flatten(input_data)[0])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The model does not have any trainable weights")
        history = probe.fit(input_data, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    loss = float(history.history["loss"][0])
    assert np.isfinite(loss), f"{type(layer).__name__}: non-finite loss {loss} after one fit step"
    if before:
        after = [np.array(w) for w in layer.trainable_weights]
        assert any(not np.array_equal(b, a) for b, a in zip(before, after)), "no trainable weight changed"
    return loss


# --------------------------------------------------------------------------- layers


def run_layer_test(
    layer_cls: type[keras.layers.Layer],
    init_kwargs: Mapping[str, Any],
    input_data: InputData,
    expected_output_shape: Any = None,
    *,
    call_kwargs: Mapping[str, Any] | None = None,
    expected_output_dtype: str | Sequence[str | None] | None = None,
    run_training_check: bool = True,
    run_saving_check: bool = True,
    mixed_precision_policies: Sequence[str] = MIXED_PRECISION_POLICIES,
) -> keras.layers.Layer:
    """The standard checks of one custom layer on ``input_data`` (see the module docstring).

    Args:
        layer_cls: the layer class.
        init_kwargs: its constructor arguments.
        input_data: the call input (array, list, or dict of call keyword arguments).
        expected_output_shape: one shape, or the output structure of shapes; ``None`` entries
            match any size (the batch).
        call_kwargs: further keyword arguments of every call (not tensors).
        expected_output_dtype: the documented dtype of the floating outputs under a mixed
            policy, when it is not the compute dtype (one for all, or a list in
            ``keras.tree.flatten`` order with ``None`` for the compute dtype).
        run_training_check: run :func:`fit_one_step`.
        run_saving_check: save a functional model around the layer to ``.keras``, reload it
            and compare the outputs (``training=False``).
        mixed_precision_policies: compute dtypes checked as ``mixed_<dtype>``.

    Returns:
        The (float32) layer, built and, if ``run_training_check``, trained one step.
    """
    call_kwargs = dict(call_kwargs or {})
    layer = layer_cls(**init_kwargs)
    inputs = symbolic_inputs(input_data)
    symbolic = call_layer(layer, inputs, **call_kwargs)
    eager = call_layer(layer, input_data, **call_kwargs)
    assert_shapes_agree(symbolic, eager, expected_output_shape)
    assert_output_dtypes(eager, "float32", "float32", symbolic)
    check_config_round_trip(layer)

    if run_training_check:
        fit_one_step(layer, input_data, call_kwargs)

    if run_saving_check:
        model = keras.Model(keras.tree.flatten(inputs), symbolic)
        with tempfile.TemporaryDirectory() as directory:
            run_model_saving_test(model, keras.tree.flatten(input_data), directory)

    for policy in mixed_precision_policies:
        with dtype_policy(policy):
            mixed = layer_cls(**init_kwargs)
            mixed_symbolic = call_layer(mixed, symbolic_inputs(input_data), **call_kwargs)
            mixed_eager = call_layer(mixed, input_data, **call_kwargs)
            assert_output_dtypes(mixed_eager, expected_output_dtype, mixed.compute_dtype, mixed_symbolic)
            assert_float32_variables(mixed)
    return layer


# --------------------------------------------------------------------------- models


def check_graph_dtypes(model: keras.Model, input_data: InputData) -> Any:
    """Every layer of a functional ``model`` gives eager outputs of the dtype its symbolic
    outputs promise, and of its compute dtype.

    A layer called several times is checked on its first call. A functional model nested in
    ``model`` (e.g. a backbone) is checked layer by layer the same way, on random inputs of its
    input shapes.

    Returns:
        The eager outputs of ``model`` on ``input_data`` (``training=False``).
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    nested = [layer for layer in layers if isinstance(layer, keras.Model)]
    plain = [layer for layer in layers if not isinstance(layer, keras.Model)]
    probe = keras.Model(
        model.input, {"layers": {layer.name: layer.output for layer in plain}, "model": model.output}
    )
    eager = probe(input_data, training=False)
    for layer in plain:
        promised = [_dtype(x) for x in keras.tree.flatten(layer.output)]
        got = [_dtype(x) for x in keras.tree.flatten(eager["layers"][layer.name])]
        assert promised == got, f"layer {layer.name!r} ({type(layer).__name__}): promises {promised}, gives {got}"
        for dtype in got:
            if keras.backend.is_float_dtype(dtype):
                assert dtype == layer.compute_dtype, (
                    f"layer {layer.name!r} ({type(layer).__name__}): output {dtype}, "
                    f"compute dtype {layer.compute_dtype}"
                )
    rng = np.random.default_rng(0)
    for layer in nested:
        sample = keras.tree.map_structure(lambda x: rng.random((2, *x.shape[1:])).astype(x.dtype), layer.input)
        check_graph_dtypes(layer, sample)
    return eager["model"]


def run_model_test(
    build_model: Callable[[], keras.Model],
    input_data: InputData,
    expected_output_shape: Any = None,
    *,
    expected_output_dtype: str | Sequence[str | None] | None = None,
    mixed_precision_policies: Sequence[str] = MIXED_PRECISION_POLICIES,
) -> keras.Model:
    """Output shapes (symbolic vs eager) and, under each mixed policy, output and layer dtypes.

    Under each policy the outputs must be finite, of ``expected_output_dtype`` (default: the
    compute dtype) and of the dtype the symbolic outputs promise; every variable stays float32
    and every layer passes :func:`check_graph_dtypes`.

    Args:
        build_model: makes the model; called once in float32 and once under each policy.
        input_data: the model input (``training=False``).
        expected_output_shape: as in :func:`run_layer_test`.
        expected_output_dtype: the documented dtype of the model's floating outputs under a
            mixed policy (e.g. ``"float32"`` for a float32 probability head), as in
            :func:`run_layer_test`.
        mixed_precision_policies: compute dtypes checked as ``mixed_<dtype>``.

    Returns:
        The float32 model.
    """
    model = build_model()
    eager = model(input_data, training=False)
    assert_shapes_agree(model.output, eager, expected_output_shape)
    assert_output_dtypes(eager, "float32", "float32", model.output)
    for policy in mixed_precision_policies:
        with dtype_policy(policy):
            mixed = build_model()
            mixed_eager = check_graph_dtypes(mixed, input_data)
            assert_output_dtypes(mixed_eager, expected_output_dtype, mixed.compute_dtype, mixed.output)
            assert all(np.all(np.isfinite(ops.convert_to_numpy(x))) for x in _float_leaves(mixed_eager))
            assert_float32_variables(mixed)
    return model


def run_model_saving_test(
    model: keras.Model,
    input_data: InputData,
    tmp_path: str | pathlib.Path,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-6,
) -> keras.Model:
    """``.keras`` save and ``keras.saving.load_model``, which rebuilds the model with
    ``from_config`` of its saved config.

    The model serializes to JSON (:func:`check_serialization`); the reloaded model has the same
    class and config, loads without a ``UserWarning`` (no skipped variables, e.g. of the
    optimizer) and gives the same outputs at ``training=False``.

    Returns:
        The reloaded model.
    """
    config = as_json(model.get_config())
    check_serialization(model)
    path = str(pathlib.Path(tmp_path) / f"{model.name}.keras")
    model.save(path)
    expected = model(input_data, training=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    assert as_json(reloaded.get_config()) == config  # a .keras file stores tuples as lists
    assert_outputs_close(reloaded(input_data, training=False), expected, rtol=rtol, atol=atol)
    return reloaded
