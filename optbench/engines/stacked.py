"""The stacked engine: many runs of one sweep trained together as one batched model.

Runs that share batch size, epochs and data form a *bundle*, trained by one compiled epoch loop.
Inside a bundle, runs that also share optimizer and arguments form a *group*: their weights are
stacked along a leading member axis (`[K, 784, 128]`, `[K, 1, 128]`, `[K, 128, 10]`, `[K, 1, 10]`)
and updated by one instance of the Keras optimizer class itself, whose callable learning rate
returns a `[K, 1, 1]` tensor so that every slice gets exactly its own run's update. Member k sees
exactly the batches its own run would see (`model.epoch_order` of its seed) and starts from its own
run's initial weights. Every op is per-slice, so a member that diverges changes no other member.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..config import RunSpec
from ..model import epoch_order, initial_weights, is_stackable, make_optimizer, steps_per_epoch
from . import (EVAL_BATCH, EpochCallback, RunResult, batch_size_for, is_finite,
               planned_n_train)
from .reference import train_one

# Bounds one bundle's memory: activations and gathered inputs of all members in one step.
STEP_BYTES = 1 << 31
MAX_MEMBERS = 64


def bundle_key(spec: RunSpec) -> tuple:
    return (spec.batch_size, spec.epochs, spec.train_size, spec.validation)


def group_key(spec: RunSpec) -> tuple:
    return (spec.optimizer, spec.optimizer_args)


def max_members(spec: RunSpec) -> int:
    """How many members fit one bundle: a `[K, B, 784]` batch plus activations per step."""
    batch = batch_size_for(spec, planned_n_train(spec))
    per_member = batch * (128 * 3 + 10 * 3) * 4 + (0 if spec.batch_size == "full" else batch * 784 * 4)
    return int(max(1, min(MAX_MEMBERS, STEP_BYTES // per_member)))


class StackedEngine:
    name = "stacked"

    def plan(self, specs: list[RunSpec]) -> list[list[RunSpec]]:
        """Units of work: bundles of stackable runs (bounded in size) and single other runs."""
        units: list[list[RunSpec]] = [[s] for s in specs if not is_stackable(s.optimizer, s.args)]
        bundles: dict[tuple, list[RunSpec]] = {}
        for spec in specs:
            if is_stackable(spec.optimizer, spec.args):
                bundles.setdefault(bundle_key(spec), []).append(spec)
        for members in bundles.values():
            members = _grouped(members)  # keep each optimizer group contiguous
            size = max_members(members[0])
            units.extend(members[i:i + size] for i in range(0, len(members), size))
        return units

    def run(self, specs: list[RunSpec], splits, on_epoch: EpochCallback) -> Iterator[RunResult]:
        for unit in self.plan(specs):
            if len(unit) == 1 and not is_stackable(unit[0].optimizer, unit[0].args):
                yield train_one(unit[0], splits, on_epoch)  # norm-based: the reference path
            else:
                yield from train_bundle(unit, splits, on_epoch)


@dataclass
class _Group:
    """Runs sharing one optimizer class and arguments: stacked variables and their optimizer."""

    specs: list[RunSpec]
    variables: list
    optimizer: object
    apply: object  # XLA-compiled `optimizer.apply` on this group's variables


def _grouped(specs: list[RunSpec]) -> list[RunSpec]:
    """`specs` reordered so that each optimizer group is contiguous (first-seen group order)."""
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(group_key(spec), []).append(spec)
    return [s for members in groups.values() for s in members]


def train_bundle(specs: list[RunSpec], splits, on_epoch: EpochCallback | None = None,
                 keep_weights: bool = False) -> list[RunResult]:
    """Train a bundle (results in optimizer-group order); an exception fails every member."""
    specs = _grouped(specs)
    start = time.perf_counter()
    histories: list[list[dict]] = [[] for _ in specs]
    try:
        status, groups = _train(specs, splits, histories, on_epoch)
    except Exception as e:  # noqa: BLE001 - failures are data; the sweep goes on
        tb = traceback.format_exc()
        wall = time.perf_counter() - start
        return [RunResult(s, "failed", h, "stacked", wall / len(specs), error=f"{type(e).__name__}: {e}",
                          traceback=tb, group=_group_info(specs, wall)) for s, h in zip(specs, histories)]
    wall = time.perf_counter() - start
    results = [RunResult(s, st, h, "stacked", wall / len(specs), group=_group_info(specs, wall),
                         deterministic=True) for s, st, h in zip(specs, status, histories)]
    if keep_weights:
        for result, weights in zip(results, _member_weights(groups)):
            result.extra["weights"] = weights
    return results


def _group_info(specs: list[RunSpec], wall: float) -> dict:
    ids = "".join(sorted(s.run_id for s in specs))
    return {"id": hashlib.sha256(ids.encode()).hexdigest()[:10], "size": len(specs),
            "wall_time": wall, "optimizers": sorted({s.optimizer for s in specs})}


def _train(specs, splits, histories, on_epoch) -> tuple[list[str], list[_Group]]:
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    groups = _build_groups(specs)
    n = len(splits.x_train)
    batch = batch_size_for(specs[0], n)
    x_train, y_train = tf.constant(splits.x_train), tf.constant(splits.y_train.astype(np.int32))
    train_epoch = _epoch_function(groups, batch, full=batch == n)
    evaluate = _eval_function(groups)
    evals = [("val", splits.x_val, splits.y_val)]
    if splits.x_test is not None:
        evals.append(("test", splits.x_test, splits.y_test))
    evals = [(name, tf.constant(x), tf.constant(y.astype(np.int32))) for name, x, y in evals]
    status = ["ok"] * len(specs)
    for epoch in range(specs[0].epochs):
        t0 = time.perf_counter()
        perm = np.stack([epoch_order(s.seed, epoch, n) for s in specs])
        loss_sum, correct = train_epoch(x_train, y_train, tf.constant(perm))
        rows = [{"loss": float(l) / n, "accuracy": float(c) / n}
                for l, c in zip(loss_sum.numpy(), correct.numpy())]
        for name, x, y in evals:
            loss, acc = (a.numpy() for a in evaluate(x, y))
            prefix = "val_" if name == "val" else "test_"
            for row, l, a in zip(rows, loss, acc):
                row.update({prefix + "loss": float(l), prefix + "accuracy": float(a)})
        seconds = (time.perf_counter() - t0) / len(specs)
        for k, (spec, row) in enumerate(zip(specs, rows)):
            if status[k] != "ok":
                continue
            row.update(epoch=epoch + 1, steps=(epoch + 1) * steps_per_epoch(n, batch), time=seconds)
            histories[k].append(row)
            if on_epoch:
                on_epoch(spec, epoch + 1)
            if not is_finite(row["loss"]):
                status[k] = "diverged"
        if "ok" not in status:
            break
    return status, groups


def _build_groups(specs: list[RunSpec]) -> list[_Group]:
    """One group per optimizer setting; members initialized slice by slice from their seeds."""
    import keras
    import tensorflow as tf

    by_key: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        by_key.setdefault(group_key(spec), []).append(spec)
    inits: dict[int, list[np.ndarray]] = {}
    groups = []
    for members in by_key.values():
        per_member = [inits.setdefault(s.seed, initial_weights(s.seed)) for s in members]
        stacked = [np.stack([w[i] for w in per_member]) for i in range(4)]
        stacked[1], stacked[3] = stacked[1][:, None, :], stacked[3][:, None, :]
        variables = [keras.Variable(w, dtype="float32", name=f"stacked_{i}")
                     for i, w in enumerate(stacked)]
        lrs = tf.constant(np.array([s.learning_rate for s in members], np.float32)[:, None, None])
        optimizer = make_optimizer(members[0].optimizer, lambda lrs=lrs: lrs, members[0].args)
        optimizer.build(variables)
        groups.append(_Group(members, variables, optimizer, _compiled_apply(optimizer, variables)))
    return groups


def _compiled_apply(optimizer, variables):
    """The optimizer's update as one XLA kernel: its elementwise ops fused into a single pass
    over the stacked state instead of one pass per op (the cost that dominates at small batch)."""
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def apply(grads):
        optimizer.apply(grads, variables)

    return apply


def _forward(x, variables):
    """Logits of every member: `x` is `[K, B, 784]` (or `[1, B, 784]`, shared by all)."""
    import tensorflow as tf

    w1, b1, w2, b2 = (v.value for v in variables)
    hidden = tf.nn.relu(tf.matmul(x, w1) + b1)
    return tf.matmul(hidden, w2) + b2


def _step_loss(x, y, variables):
    """Per-member mean cross-entropy, as Keras computes it from the softmax layer's logits."""
    import tensorflow as tf

    logits = _forward(x, variables)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    per_member = tf.reduce_sum(ce, axis=1) / tf.cast(tf.shape(ce)[1], tf.float32)
    return per_member, logits


def _loss_and_gradients(x, y, variables):
    """Per-member mean cross-entropy, logits, and the gradients autodiff would give.

    Written out rather than taped: the same ops TensorFlow's gradient functions emit for this
    graph (the fused cross-entropy op's own backprop, scaled by 1/B as the mean's gradient is,
    then the matmul and bias-add gradients), in about half as many ops per step, which matters
    because a step at batch 20 is mostly per-op overhead.
    """
    import tensorflow as tf

    w1, b1, w2, b2 = (v.value for v in variables)
    pre = tf.matmul(x, w1) + b1
    hidden = tf.nn.relu(pre)
    logits = tf.matmul(hidden, w2) + b2
    k, b = tf.shape(logits)[0], tf.shape(logits)[1]
    ce, backprop = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(
        features=tf.reshape(logits, [-1, 10]), labels=tf.reshape(y, [-1]))
    scale = 1.0 / tf.cast(b, tf.float32)
    per_member = tf.reduce_sum(tf.reshape(ce, [k, b]), axis=1) / tf.cast(b, tf.float32)
    d_logits = tf.reshape(backprop, [k, b, 10]) * scale
    d_pre = tf.raw_ops.ReluGrad(gradients=tf.matmul(d_logits, w2, adjoint_b=True),
                                features=hidden)
    grads = [tf.matmul(x, d_pre, adjoint_a=True), tf.reduce_sum(d_pre, axis=1, keepdims=True),
             tf.matmul(hidden, d_logits, adjoint_a=True),
             tf.reduce_sum(d_logits, axis=1, keepdims=True)]
    return per_member, logits, grads


def _correct(logits, y):
    """Keras's accuracy compares labels with the argmax of the softmax output (not the logits)."""
    import tensorflow as tf

    pred = tf.argmax(tf.nn.softmax(logits), axis=-1, output_type=tf.int32)
    return tf.reduce_sum(tf.cast(tf.equal(pred, y), tf.float32), axis=1)


def _epoch_function(groups: list[_Group], batch: int, full: bool):
    """One compiled epoch over all groups: returns per-member summed loss and correct count."""
    import tensorflow as tf

    sizes = [len(g.specs) for g in groups]
    bounds = np.cumsum([0] + sizes)

    def step(x_train, y_train, idx):
        losses, corrects = [], []
        for g, lo, hi in zip(groups, bounds[:-1], bounds[1:]):
            if full:  # every member's batch is the whole set: share it, gather nothing
                xb, yb = x_train[None], tf.broadcast_to(y_train[None], [hi - lo, tf.shape(y_train)[0]])
            else:
                xb, yb = tf.gather(x_train, idx[lo:hi]), tf.gather(y_train, idx[lo:hi])
            per_member, logits, grads = _loss_and_gradients(xb, yb, g.variables)
            g.apply(grads)
            b = tf.cast(tf.shape(yb)[1], tf.float32)
            losses.append(per_member * b)  # Keras's loss tracker weighs each batch by its size
            corrects.append(_correct(logits, yb))
        return tf.concat(losses, 0), tf.concat(corrects, 0)

    @tf.function
    def train_epoch(x_train, y_train, perm):
        n = perm.shape[1]
        steps, rest = divmod(n, batch)
        k = perm.shape[0]

        def body(s, loss_sum, correct):
            l, c = step(x_train, y_train, perm[:, s * batch:(s + 1) * batch])
            return s + 1, loss_sum + l, correct + c

        _, loss_sum, correct = tf.while_loop(lambda s, *_: s < steps, body,
                                             (tf.constant(0), tf.zeros([k]), tf.zeros([k])))
        if rest:
            l, c = step(x_train, y_train, perm[:, steps * batch:])
            loss_sum, correct = loss_sum + l, correct + c
        return loss_sum, correct

    return train_epoch


def _eval_function(groups: list[_Group]):
    """Per-member loss and accuracy over a data set, in batches of EVAL_BATCH as Keras does."""
    import tensorflow as tf

    @tf.function
    def evaluate(x, y):
        n = x.shape[0]
        losses, accs = [], []
        for g in groups:
            k = len(g.specs)
            loss_sum, correct = tf.zeros([k]), tf.zeros([k])
            for lo in range(0, n, EVAL_BATCH):
                xb, yb = x[None, lo:lo + EVAL_BATCH], y[None, lo:lo + EVAL_BATCH]
                yb = tf.broadcast_to(yb, [k, tf.shape(yb)[1]])
                per_member, logits = _step_loss(xb, yb, g.variables)
                loss_sum += per_member * tf.cast(tf.shape(yb)[1], tf.float32)
                correct += _correct(logits, yb)
            losses.append(loss_sum / n)
            accs.append(correct / n)
        return tf.concat(losses, 0), tf.concat(accs, 0)

    return evaluate


def _member_weights(groups: list[_Group]) -> list[list[np.ndarray]]:
    """Each member's weights in the reference model's layout (for fidelity checks)."""
    out = []
    for g in groups:
        w1, b1, w2, b2 = (v.numpy() for v in g.variables)
        out.extend([w1[k], b1[k, 0], w2[k], b2[k, 0]] for k in range(len(g.specs)))
    return out
