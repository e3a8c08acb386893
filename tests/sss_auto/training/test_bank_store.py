"""The PCSW bank as its own verified file per refresh, named by the checkpoints."""

import numpy as np
import pytest

from sss_auto.errors import CheckpointError
from sss_auto.prompting.bank import PromptBank, StoredObjects
from sss_auto.training.bank_store import load_bank, prune_banks, save_bank


def _bank(epoch: int) -> PromptBank:
    labels = np.zeros((4, 6, 6), np.uint8)
    labels[1:3, 2:4, 2:5] = 2
    return PromptBank({"unl_000": StoredObjects.from_volume(labels)}, epoch, 0.5, 0.25)


def test_a_saved_bank_loads_back_from_the_reference_and_a_never_built_bank_stays_inline(tmp_path):
    reference = save_bank(_bank(3), tmp_path)
    assert reference["file"] == "pcsw_bank_epoch_0003.pt" and (tmp_path / reference["file"]).is_file()
    bank, again = load_bank(reference, tmp_path)
    assert again == reference and bank.epoch == 3 and bank.acceptance == 0.5
    np.testing.assert_array_equal(bank.slice_labels("unl_000", 1, (6, 6)), _bank(3).slice_labels("unl_000", 1, (6, 6)))
    inline, none = load_bank(PromptBank().state_dict(), tmp_path)
    assert none is None and inline.epoch == -1


def test_a_missing_bank_file_is_rebuilt_and_a_swapped_one_refused(tmp_path, caplog):
    reference = save_bank(_bank(3), tmp_path)
    other = save_bank(_bank(5), tmp_path)
    (tmp_path / other["file"]).replace(tmp_path / reference["file"])  # another (valid) bank under the named file
    with pytest.raises(CheckpointError, match="not the PCSW bank the checkpoint names"):
        load_bank(reference, tmp_path)
    (tmp_path / reference["file"]).unlink()
    bank, none = load_bank(reference, tmp_path)
    assert bank.epoch == -1 and none is None and "is rebuilt at the next semi-supervised epoch" in caplog.text


def test_prune_keeps_only_the_banks_the_checkpoints_name(tmp_path):
    first, second, third = (save_bank(_bank(e), tmp_path) for e in (0, 10, 20))
    prune_banks(tmp_path, [third, first, None])
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == [first["file"], third["file"]]
