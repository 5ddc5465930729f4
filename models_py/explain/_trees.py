"""Per-feature contributions of a tree-ensemble champion, computed by onnxruntime from the
champion's own ONNX trees.

The method is Saabas' path attribution (``shap``'s ``TreeExplainer.shap_values(approximate=True)``
and the ``treeinterpreter`` package): walking a row down a tree, every split moves the expected
output from the node's value to the child's, and that change is credited to the split's feature.
Summed over the trees, the contributions plus the bias add up to the ensemble's raw output exactly.
Exact TreeSHAP averages over feature orders instead and costs O(leaves x depth^2) per tree and
row; Saabas costs one walk down each tree, the same as scoring. docs/explaining.md measures how
often its top three features are exact SHAP's.

Two derived ONNX models, built once per champion and cutoff, do the work in onnxruntime:

1. a *leaf* model (TreeEnsembleRegressor, one output per tree = the index of the leaf a row
   reaches) run over a sample of the rows explained, whose leaf counts are the node covers
   (the expected value of a node is the cover-weighted mean of its leaves);
2. a *contribution* model (TreeEnsembleRegressor, one output per feature): each leaf carries the
   contributions of its path, so the ensemble's sum is each row's contribution vector.

What is explained is the base estimator's raw output, before the champion's sigmoid calibration:
log-odds for gradient boosting (calibration is a monotone map of it, so the ranking of features is
the calibrated score's too), the averaged class-1 probability for a random forest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from models_py._errors import PropensityError

_ML_DOMAIN = "ai.onnx.ml"
_SPLIT_MODES = {
    b"BRANCH_LEQ",
    b"BRANCH_LT",
    b"BRANCH_GTE",
    b"BRANCH_GT",
    b"BRANCH_EQ",
    b"BRANCH_NEQ",
}


class ExplainError(PropensityError):
    """A champion whose scores cannot be explained by this method (not a tree ensemble)."""


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """The trees of a champion's ONNX graph, as flat node arrays (one row per node)."""

    model_id: str
    n_features: int
    tree: np.ndarray  # tree id of each node
    node: np.ndarray  # node id within its tree
    feature: np.ndarray
    threshold: np.ndarray
    mode: tuple[bytes, ...]
    true_child: np.ndarray  # node ids
    false_child: np.ndarray
    missing_true: np.ndarray
    leaf_value: np.ndarray  # class-1 output of each leaf (0 for splits)
    bias: float
    units: str  # 'log-odds' or 'probability'

    @property
    def is_leaf(self) -> np.ndarray:
        return np.array([m == b"LEAF" for m in self.mode])

    @property
    def n_trees(self) -> int:
        return int(self.tree.max()) + 1 if self.tree.size else 0


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def parse_tree_ensemble(onnx_bytes: bytes, *, model_id: str, n_features: int) -> TreeEnsemble:
    """The trees of a champion whose graph is one TreeEnsembleClassifier over the feature input
    (gradient boosting, random forest, LightGBM), followed by the calibration nodes.

    Raises
    ------
    ExplainError
        Any other graph (a logistic regression pipeline, several ensembles).
    """
    model = onnx.load_from_string(bytes(onnx_bytes))
    graph = model.graph
    ensembles = [n for n in graph.node if n.op_type == "TreeEnsembleClassifier"]
    inputs = {graph.input[0].name} | {
        n.output[0] for n in graph.node if n.op_type == "Cast" and n.input[0] == graph.input[0].name
    }
    # Anything else that models (another ML-domain operator, a matrix product) would make the
    # score depend on more than these trees: a voting or stacking ensemble, a linear model.
    others = [
        n.op_type
        for n in graph.node
        if n not in ensembles and (n.domain == _ML_DOMAIN or n.op_type in ("MatMul", "Gemm"))
    ]
    if len(ensembles) != 1 or ensembles[0].input[0] not in inputs or others:
        kinds = sorted({n.op_type for n in graph.node})
        raise ExplainError(
            f"model {model_id!r} is not one tree ensemble over its features (ONNX nodes: "
            f"{', '.join(kinds)}); reasons are computed for tree-ensemble champions only"
        )
    a = _attrs(ensembles[0])
    if "nodes_values" not in a:
        raise ExplainError(f"model {model_id!r}: tree thresholds stored as tensors are not read")
    modes = tuple(a["nodes_modes"])
    unknown = set(modes) - _SPLIT_MODES - {b"LEAF"}
    if unknown:
        raise ExplainError(f"model {model_id!r}: unsupported tree node modes {sorted(unknown)}")
    tree = np.asarray(a["nodes_treeids"], dtype=np.int64)
    node = np.asarray(a["nodes_nodeids"], dtype=np.int64)
    class_ids = np.asarray(a["class_ids"], dtype=np.int64)
    # Binary classifiers carry either class-1 weights, or one score (class id 0) that the
    # post-transform turns into P(class 1) (onnxruntime's binary convention).
    positive = 1 if (class_ids == 1).any() else 0
    index = {(t, n): i for i, (t, n) in enumerate(zip(tree.tolist(), node.tolist(), strict=True))}
    leaf_value = np.zeros(tree.size)
    for t, n, c, w in zip(
        a["class_treeids"], a["class_nodeids"], class_ids.tolist(), a["class_weights"], strict=True
    ):
        if c == positive:
            leaf_value[index[(t, n)]] += w
    base = list(a.get("base_values", []) or [])
    bias = float(base[positive] if len(base) > 1 else (base[0] if base else 0.0))
    transform = a.get("post_transform", b"NONE")
    units = {b"LOGISTIC": "log-odds", b"NONE": "probability"}.get(transform)
    if units is None:
        raise ExplainError(f"model {model_id!r}: unsupported post_transform {transform!r}")
    return TreeEnsemble(
        model_id=model_id,
        n_features=n_features,
        tree=tree,
        node=node,
        feature=np.asarray(a["nodes_featureids"], dtype=np.int64),
        threshold=np.asarray(a["nodes_values"], dtype=np.float64),
        mode=modes,
        true_child=np.asarray(a["nodes_truenodeids"], dtype=np.int64),
        false_child=np.asarray(a["nodes_falsenodeids"], dtype=np.int64),
        missing_true=np.asarray(
            a.get("nodes_missing_value_tracks_true", [0] * tree.size), dtype=np.int64
        ),
        leaf_value=leaf_value,
        bias=bias,
        units=units,
    )


#: onnxruntime intra-op threads of an explainer session (it runs alone on large batches).
EXPLAIN_THREADS = 2


def _regressor(ens: TreeEnsemble, targets: Sequence[tuple[int, int, int, float]], n_targets: int):
    """A TreeEnsembleRegressor with the ensemble's splits and the given leaf targets
    (tree, node, target, weight), as an onnxruntime session."""
    import onnxruntime as ort

    t_tree, t_node, t_id, t_w = zip(*targets, strict=True) if targets else ((), (), (), ())
    node = helper.make_node(
        "TreeEnsembleRegressor",
        ["X"],
        ["Y"],
        domain=_ML_DOMAIN,
        n_targets=n_targets,
        nodes_treeids=ens.tree.tolist(),
        nodes_nodeids=ens.node.tolist(),
        nodes_featureids=ens.feature.tolist(),
        nodes_values=ens.threshold.astype(np.float32).tolist(),
        nodes_modes=[m.decode() for m in ens.mode],
        nodes_truenodeids=ens.true_child.tolist(),
        nodes_falsenodeids=ens.false_child.tolist(),
        nodes_missing_value_tracks_true=ens.missing_true.tolist(),
        target_treeids=list(t_tree),
        target_nodeids=list(t_node),
        target_ids=list(t_id),
        target_weights=[float(w) for w in t_w],
        post_transform="NONE",
        aggregate_function="SUM",
    )
    graph = helper.make_graph(
        [node],
        "explain",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, ens.n_features])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n_targets])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(_ML_DOMAIN, 1)]
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = EXPLAIN_THREADS
    return ort.InferenceSession(model.SerializeToString(), options)


def _tree_nodes(ens: TreeEnsemble) -> list[dict]:
    """Per tree: node id -> (row in the flat arrays)."""
    trees: list[dict] = [{} for _ in range(ens.n_trees)]
    for i, (t, n) in enumerate(zip(ens.tree.tolist(), ens.node.tolist(), strict=True)):
        trees[t][n] = i
    return trees


@dataclass(frozen=True, eq=False)
class Explainer:
    """Contributions of one tree-ensemble champion (see the module docstring)."""

    ensemble: TreeEnsemble
    session: object
    expected_value: float  # bias + the trees' root values: the output with no contribution
    covers: np.ndarray  # background rows reaching each node
    node_values: np.ndarray  # expected output of each node (cover-weighted mean of its leaves)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """(rows, n_features) float32 contributions, in `ensemble.units`."""
        if matrix.shape[0] == 0:
            return np.zeros((0, self.ensemble.n_features), dtype=np.float32)
        return self.session.run(["Y"], {"X": np.ascontiguousarray(matrix, dtype=np.float32)})[0]


def build_explainer(ens: TreeEnsemble, background: np.ndarray) -> Explainer:
    """The contribution model of `ens`, node covers counted on `background` (rows of features:
    the rows explained, or a sample of them).

    A node no background row reaches takes its tree's mean leaf value (it then credits nothing
    to the rows of the sample)."""
    trees = _tree_nodes(ens)
    is_leaf = ens.is_leaf
    # 1. leaf reached by each background row, per tree (leaf model: target = tree, weight = row)
    targets = [
        (int(ens.tree[i]), int(ens.node[i]), int(ens.tree[i]), float(i))
        for i in np.flatnonzero(is_leaf)
    ]
    leaf_session = _regressor(ens, targets, ens.n_trees)
    reached = leaf_session.run(["Y"], {"X": np.ascontiguousarray(background, dtype=np.float32)})[0]
    cover = np.bincount(np.rint(reached).astype(np.int64).ravel(), minlength=ens.tree.size).astype(
        np.float64
    )
    # 2. expected value of every node, bottom-up (children have larger node ids in skl2onnx and
    # onnxmltools graphs, but the order is not relied on: a post-order walk per tree)
    value = np.where(is_leaf, ens.leaf_value, 0.0)
    weight = np.where(is_leaf, cover, 0.0)
    for nodes in trees:
        stack = [(0, False)] if 0 in nodes else []
        while stack:
            n, expanded = stack.pop()
            i = nodes[n]
            if is_leaf[i]:
                continue
            left, right = nodes[int(ens.true_child[i])], nodes[int(ens.false_child[i])]
            if not expanded:
                stack += [
                    (n, True),
                    (int(ens.true_child[i]), False),
                    (int(ens.false_child[i]), False),
                ]
                continue
            weight[i] = weight[left] + weight[right]
            value[i] = (
                (weight[left] * value[left] + weight[right] * value[right]) / weight[i]
                if weight[i] > 0
                else (value[left] + value[right]) / 2
            )
    # 3. each leaf's path contributions: value(child) - value(node) to the node's feature
    contrib_targets: list[tuple[int, int, int, float]] = []
    expected = ens.bias
    for t, nodes in enumerate(trees):
        if 0 not in nodes:
            continue
        expected += value[nodes[0]]
        stack = [(0, {})]
        while stack:
            n, path = stack.pop()
            i = nodes[n]
            if is_leaf[i]:
                contrib_targets += [(t, n, f, w) for f, w in path.items() if w != 0.0]
                continue
            f = int(ens.feature[i])
            for child in (int(ens.true_child[i]), int(ens.false_child[i])):
                step = value[nodes[child]] - value[i]
                stack.append((child, {**path, f: path.get(f, 0.0) + step}))
    session = _regressor(ens, contrib_targets, ens.n_features)
    return Explainer(
        ensemble=ens,
        session=session,
        expected_value=float(expected),
        covers=weight,
        node_values=value,
    )


def require_shap():
    """The ``shap`` module (the optional `explain` extra), or a named error saying how to get it.

    Raises
    ------
    ExplainError
        ``shap`` is not installed.
    """
    try:
        import shap
    except ImportError as exc:
        raise ExplainError(
            "exact TreeSHAP needs the shap package: pip install 'propensity[explain]', or set "
            "the dbt var score_reasons_method: saabas"
        ) from exc
    return shap


def tree_shap_values(ens: TreeEnsemble, background: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact path-dependent TreeSHAP (the ``shap`` library) of the ONNX trees, node covers
    counted on `background`: (rows, n_features) in `ens.units`; ``shap`` is an optional
    dependency.

    Computed tree by tree, once per distinct *decision pattern*: a tree's TreeSHAP values of a
    row depend on the row only through the side of each of the tree's splits it falls on (TreeSHAP
    follows the row at every split on a present feature, on its path or off it), so rows with the
    same pattern share them. A tree of 30 splits sees a few hundred to a few thousand patterns
    among 50,000 customers: this costs about a tenth of calling ``shap`` on every row
    (docs/explaining.md), with the same values (float rounding).
    """
    shap = require_shap()
    explainer = build_explainer(ens, background)
    is_leaf = ens.is_leaf
    cover, value = explainer.covers, explainer.node_values
    X = np.asarray(rows, dtype=np.float32)
    out = np.zeros((X.shape[0], ens.n_features), dtype=np.float64)
    if X.shape[0] == 0:
        return out.astype(np.float32)
    for nodes in _tree_nodes(ens):
        ids = sorted(nodes)
        local = {n: k for k, n in enumerate(ids)}
        rows_ = [nodes[n] for n in ids]
        left = np.array([-1 if is_leaf[i] else local[int(ens.true_child[i])] for i in rows_])
        right = np.array([-1 if is_leaf[i] else local[int(ens.false_child[i])] for i in rows_])
        missing_left = np.array([bool(ens.missing_true[i]) for i in rows_])
        features = np.array([0 if is_leaf[i] else int(ens.feature[i]) for i in rows_])
        thresholds = np.array([np.float32(ens.threshold[i]) for i in rows_], dtype=np.float32)
        tree = {
            "children_left": left,
            "children_right": right,
            "children_default": np.where(missing_left, left, right),
            "features": features,
            "thresholds": thresholds.astype(np.float64),
            "values": np.array([value[i] for i in rows_]).reshape(-1, 1),
            "node_sample_weight": np.maximum(np.array([cover[i] for i in rows_]), 1e-9),
        }
        splits = np.flatnonzero(left >= 0)
        if splits.size == 0:
            continue
        # The side of every split each row takes, as shap decides it: missing -> the default
        # child, else x <= threshold -> left (the ONNX nodes' true branch).
        x = X[:, features[splits]]
        goes_left = np.where(np.isnan(x), missing_left[splits], x <= thresholds[splits])
        _, first, inverse = np.unique(
            _pattern_keys(goes_left), return_index=True, return_inverse=True
        )
        phi = np.asarray(
            shap.TreeExplainer({"trees": [tree], "base_offset": 0.0}).shap_values(
                X[first].astype(np.float64)
            ),
            dtype=np.float64,
        )
        used = np.unique(features[splits])
        out[:, used] += phi[:, used][inverse.ravel()]
    return out.astype(np.float32)


def _pattern_keys(goes_left: np.ndarray) -> np.ndarray:
    """One hashable key per row of a boolean (rows, splits) matrix."""
    if goes_left.shape[1] <= 63:
        return goes_left.astype(np.int64) @ (np.int64(1) << np.arange(goes_left.shape[1]))
    packed = np.ascontiguousarray(np.packbits(goes_left, axis=1, bitorder="little"))
    return packed.view(np.dtype((np.void, packed.shape[1])))[:, 0]
