"""Table 3's methods by name (§4.2.2): their inputs, sizes, and the object that trains each."""

from __future__ import annotations

from tf_bimodal.config.table3 import TABLE3_METHODS, Table3Config
from tf_bimodal.models.classification.table3 import fujioka, kumar, misra2021, wang, yap, zhang
from tf_bimodal.training.table3.kumar import KumarMethod
from tf_bimodal.training.table3.method import SingleNetworkMethod, Table3Method
from tf_bimodal.training.table3.misra2021 import Misra2021Method
from tf_bimodal.training.table3.wang import WangMethod

METHOD_MODULES = {"yap": yap, "fujioka": fujioka, "zhang": zhang, "kumar": kumar, "wang": wang,
                  "misra2021": misra2021}
"""Each method's model module: ``MODALITIES``, ``ORIGINAL_INPUT_SIZE``."""

METHOD_CLASSES = {"yap": SingleNetworkMethod, "fujioka": SingleNetworkMethod, "zhang": SingleNetworkMethod,
                  "kumar": KumarMethod, "wang": WangMethod, "misra2021": Misra2021Method}


def _check_name(name: str) -> None:
    if name not in TABLE3_METHODS:
        raise ValueError(f"table3: method must be one of {TABLE3_METHODS}, got {name!r}")


def method_modalities(name: str) -> tuple[str, ...]:
    """What method ``name`` reads: ``("bmode",)``, ``("semode",)`` or ``("bmode", "semode")``."""
    _check_name(name)
    return METHOD_MODULES[name].MODALITIES


def method_input_size(name: str, config: Table3Config) -> int:
    """The side of method ``name``'s square inputs: ``config.input_size``, or the original's
    (224; InceptionV3 299) when None; never under 75 for Zhang's InceptionV3."""
    _check_name(name)
    size = config.input_size or METHOD_MODULES[name].ORIGINAL_INPUT_SIZE
    if name == "zhang":
        size = max(size, zhang.MINIMUM_SIZE)
    return int(size)


def build_method(name: str, config: Table3Config, seed: int) -> Table3Method:
    """The untrained method ``name`` (a :class:`~.method.Table3Method`)."""
    _check_name(name)
    return METHOD_CLASSES[name](name, method_modalities(name), config, seed, method_input_size(name, config))


def load_method(name: str, config: Table3Config, seed: int, folder: str) -> Table3Method:
    """The method ``name`` that :meth:`~.method.Table3Method.save` wrote into ``folder``."""
    return build_method(name, config, seed).load(folder)
