"""Model.set_data_parallel and convvae.shard. Real multi-process runs are
the MPI tests (tests/mpi) and examples/python/train_mpi.py; here one process
plays size 1 through the hook, and a failing hook is reported."""
import pytest

import convvae
from convvae import ConvVAEError, Status
from helpers import TINY


def test_shard_splits_evenly_in_order():
    parts = [convvae.shard(10, r, 3) for r in range(3)]
    assert parts == [(0, 4), (4, 3), (7, 3)]
    with pytest.raises(ConvVAEError) as e:
        convvae.shard(10, 3, 3)
    assert e.value.status == Status.INVALID_ARG


def test_hook_sees_whole_gradient_and_one_process_trains(model, dataset):
    sizes = []

    def reduce(buf):
        sizes.append(len(buf))  # one process: the sum is buf itself

    model.set_data_parallel(0, 1, reduce)
    assert model.train(dataset, 1) is True
    # the gradient went through the hook (with the padding between tensors)
    assert model.num_params <= max(sizes) < 1.1 * model.num_params
    model.set_data_parallel(0, 1)  # back to a plain process
    assert model.train(dataset, 1) is True


def test_failing_hook_is_an_io_error(model, dataset):
    def reduce(buf):
        raise RuntimeError("network down")

    model.set_data_parallel(0, 2, reduce)
    with pytest.raises(ConvVAEError) as e:
        model.train(dataset, 1)
    assert e.value.status == Status.IO
    with pytest.raises(ConvVAEError):
        model.set_data_parallel(0, 2)  # two processes need a hook


def test_micro_batch_trains_the_same_model(dataset):
    with convvae.Model(TINY) as whole, convvae.Model(TINY) as parts:
        _same_in_parts(whole, parts, dataset)


def _same_in_parts(whole, parts, dataset):
    assert parts.micro_batch == 0
    parts.micro_batch = 3
    assert parts.micro_batch == 3
    whole.train(dataset, 1)
    parts.train(dataset, 1)
    a, b = whole.loss(dataset), parts.loss(dataset)
    assert abs(a.total - b.total) <= 1e-4 * abs(a.total)
    with pytest.raises(ConvVAEError) as e:
        parts.micro_batch = -1
    assert e.value.status == Status.INVALID_ARG


def test_overlapped_hook_sees_the_gradient_in_parts(model, dataset):
    sizes = []

    def reduce(buf):
        sizes.append(len(buf))

    model.set_data_parallel(0, 1, reduce)
    model.set_reduce_overlap(True)
    assert model.train(dataset, 1) is True
    # the buckets cover the gradient: none is all of it
    assert max(sizes) < model.num_params
    model.set_reduce_overlap(False)
    model.set_data_parallel(0, 1)
