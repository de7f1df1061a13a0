"""Freezing a TF2 function into a GraphDef: what the landmark CNN's and the Keras
FaceNet's exports both do to get a frozen ``.pb``."""
from __future__ import annotations


def freeze_function(function, output_name: str):
    """``(graph_def, input tensor names)`` of ``function`` (a concrete function with one
    output) with its variables folded into constants. The output is also named
    ``output_name:0`` (an Identity node), a stable name instead of TensorFlow's generated
    ``Identity``. Serialise with ``SerializeToString(deterministic=True)`` so that the
    same weights give the same bytes."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(function)
    graph_def = frozen.graph.as_graph_def()
    (output,) = frozen.outputs
    node = graph_def.node.add(name=output_name, op="Identity", input=[output.op.name])
    node.attr["T"].type = tf.float32.as_datatype_enum
    return graph_def, [tensor.name for tensor in frozen.inputs]
