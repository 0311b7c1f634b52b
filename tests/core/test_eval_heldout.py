"""Held-out shards for evaluation: one ordered pass, tolerated refusals counted, others a one-line error."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from domainclip.core.data.decode import SampleDecoder
from domainclip.core.data.writer import ShardWriter
from domainclip.core.errors import DatasetNotFoundError, InputError
from domainclip.core.eval.features import collate_samples
from domainclip.core.eval.heldout import HeldOutShards, embed_decodable, shard_images, warn_skipped


def write_shards(folder, n=6, per_shard=3, broken=()):
    with ShardWriter(folder, max_count=per_shard, image_format="png") as writer:
        for i in range(n):
            image = Image.new("RGB", (8, 8), (10 * i, 0, 0))
            sample = {"__key__": f"s{i:02d}", "image": image, "text": f"sample {i}", "label": i}
            if i in broken:
                sample = {"__key__": f"s{i:02d}", "png": b"not a png", "txt": f"sample {i}", "cls": str(i)}
            writer.write(sample)
    return folder


def decoder():
    return SampleDecoder(required=("image", "text", "label"), text_choice="first")


def test_reads_every_sample_once_in_shard_order(tmp_path):
    shards = HeldOutShards(write_shards(tmp_path / "held"), decoder(), suite="x/held", expected="shards")
    assert len(shards.urls) == 2
    labels = [sample["label"] for sample in shards]
    assert labels == list(range(6)) and shards.tally.good == 6 and shards.tally.corrupt == 0
    assert [sample["label"] for sample in shards] == labels  # a second pass reads the same


def test_tolerated_refusals_are_counted_and_warned_about(tmp_path):
    shards = HeldOutShards(write_shards(tmp_path / "held", broken={4}), decoder(), suite="x/held", expected="shards",
                           skip=("bad_image",))
    assert [s["label"] for s in shards] == [0, 1, 2, 3, 5]
    with pytest.warns(UserWarning, match=r"^x/held: skipped 1 sample\(s\) that cannot be decoded \(bad_image: 1; "
                                         r"e\.g\. .*shard-000001\.tar key=s04: "):
        assert warn_skipped("x/held", shards.tally) == 1


def test_other_refusals_fail_after_the_pass(tmp_path):
    shards = HeldOutShards(write_shards(tmp_path / "held", broken={1}), decoder(), suite="x/held", expected="shards")
    with pytest.raises(InputError, match=r"(?s)^x/held: unusable samples in the held-out shards under .*held\n.*"
                                         r"bad_image: 1"):
        list(shards)


def test_missing_shards_name_the_suite_and_what_was_expected(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"^x/held: dataset not found at .*nowhere: .*; expected my shards"):
        HeldOutShards(tmp_path / "nowhere", decoder(), suite="x/held", expected="my shards")


def test_dataloader_workers_share_the_shards(tmp_path):
    shards = HeldOutShards(write_shards(tmp_path / "held", n=8, per_shard=2), decoder(), suite="x/held",
                           expected="shards")
    loader = DataLoader(shards, batch_size=3, num_workers=2, collate_fn=collate_samples)
    labels = torch.cat([batch["label"] for batch in loader])
    assert sorted(labels.tolist()) == list(range(8))


def test_shard_images_decodes_only_the_wanted_images_raw(tmp_path):
    root = write_shards(tmp_path / "held")
    urls = HeldOutShards(root, decoder(), suite="x/held", expected="shards").urls
    wanted = {(urls[0], "s01"), (urls[1], "s04"), (urls[0], "s04")}  # s04 lies in the second shard only
    found = shard_images(root, wanted)
    assert sorted(found) == [(urls[0], "s01"), (urls[1], "s04")]
    image = found[(urls[1], "s04")]
    assert image.dtype == torch.uint8 and image.shape == (3, 8, 8) and int(image[0, 0, 0]) == 40


def test_embed_decodable_names_a_pass_with_nothing_decodable(tmp_path):
    root = write_shards(tmp_path / "held", n=2, broken=(0, 1))
    shards = HeldOutShards(root, decoder(), suite="x/held", expected="shards", skip=("bad_image",))
    loader = DataLoader(shards, batch_size=2, collate_fn=collate_samples)
    with pytest.raises(InputError, match=r"(?s)x/held: nothing here\n.*bad_image: 2"):
        embed_decodable(torch.nn.Identity(), loader, "cpu", ("label",), lambda: shards.tally, "x/held: nothing here")
