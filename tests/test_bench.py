"""The benchmark's own machinery: its reference loops do the book's work, the README block."""

import pytest
import torch

from mnistlab.build import bench, machine, training_bench


def test_textbook_dataset_reads_the_same_images_and_labels(data, tmp_path):
    from torchvision.datasets import MNIST
    from torchvision.transforms import ToTensor

    training_bench.write_torchvision_mnist(data, tmp_path)
    for train, x, y in ((True, data.x_train, data.y_train), (False, data.x_test, data.y_test)):
        ds = MNIST(str(tmp_path), train=train, download=False, transform=ToTensor())
        assert len(ds) == len(y)
        for i in (0, len(y) // 2, len(y) - 1):
            image, label = ds[i]
            assert label == int(y[i])
            assert torch.equal(image.reshape(-1), x[i])  # pixels are k/255: exact through uint8


def test_the_skilled_loop_trains_the_same_network_as_train(data):
    """The skilled loop is a fair reference: same weights, batch order and update as mnistlab's train."""
    from mnistlab.models import ModelConfig
    from mnistlab.train import TrainConfig, train

    config, tc = ModelConfig(), TrainConfig(epochs=1, seed=3)
    model, seconds = training_bench.skilled_epoch(data, config, tc)
    ours = train(config, tc, data, progress=False).model
    assert seconds > 0
    for (name, a), b in zip(model.state_dict().items(), ours.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4, msg=name)


def test_write_idx_is_read_back_by_read_idx(tmp_path):
    import numpy as np

    from mnistlab.idx import read_idx

    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    training_bench.write_idx(tmp_path / "x", a)
    assert np.array_equal(read_idx(tmp_path / "x", expected_shape=(2, 28, 28)), a)


def test_readme_block_is_replaced_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.README_START}\nold\n{bench.README_END}\nafter\n")
    block = bench.readme_table([("figure", "1 s", "target < 2 s: met")], "python -m mnistlab.build.bench --readme")
    bench.write_readme(block, readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\nafter\n") and "old" not in text
    assert "| figure | 1 s | target < 2 s: met |" in text and "Measured on" in text


def test_readme_block_carries_the_extra_blocks_after_the_table(tmp_path):
    block = bench.readme_table([("figure", "1 s", "")], "cmd", ["| images | G = 1 |\n|---|---|\n| 60,000 | 0.5 |"])
    assert block.index("| figure | 1 s |  |") < block.index("| 60,000 | 0.5 |") < block.index(bench.README_END)


def test_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(ValueError, match="bench:start"):
        bench.write_readme("block", readme)


def test_tree_memory_splits_shared_pages():
    import os

    pss, rss = machine.tree_memory(os.getpid())
    assert 0 < pss <= rss
    assert machine.tree_memory(2**22 + 12345) == (0, 0)  # no such process


def test_forward_flops_count_the_books_networks():
    from mnistlab.models import ModelConfig, forward_flops

    assert forward_flops(ModelConfig()) == 2 * (784 * 32 + 32 * 16 + 16 * 10)
    cnn = ModelConfig(arch="cnn", channels=(8, 16), hidden=(32,))
    conv = 2 * (1 * 25 * 8 * 28 * 28 + 8 * 25 * 16 * 14 * 14)
    assert forward_flops(cnn) == conv + 2 * (16 * 7 * 7 * 32 + 32 * 10)


def test_the_build_log_gives_each_pages_seconds_and_slowest_cell():
    from mnistlab.build import book_bench

    log = (
        "[reexecute] 07_cnn: 612.3 s, peak 1.25 GiB (slowest cell: 301.0 s, code cell 3 of 30; the cell timeout "
        "is 900 s)"
    )
    page = book_bench.PAGE_LINE.search(log)
    assert page[1] == "07_cnn" and float(page[2]) == 612.3 and float(page[3]) == 1.25 and float(page[4]) == 301.0


def test_the_step_products_are_the_steps_own_flops():
    """The products timed as a step's floor are its products: FLOPs as the networks count them."""
    from torch.utils.flop_counter import FlopCounterMode

    from mnistlab.build import training_bench as tb
    from mnistlab.models import ModelConfig, forward_flops

    def flops(step) -> int:
        with FlopCounterMode(display=False) as counter:
            step()
        return counter.get_total_flops()

    B, G = 8, 3
    first_layer_input_grad = 2 * 784 * 32 * B  # the pixels need no gradient
    mlp = 3 * forward_flops(ModelConfig()) * B - first_layer_input_grad
    assert flops(tb.mlp_products(torch.rand(50, 28, 28), G, B)) == G * mlp
