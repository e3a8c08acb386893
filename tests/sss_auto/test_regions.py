"""Connected components through scikit-image: connectivity and slice extents on hand-made masks."""

import numpy as np
from scipy import ndimage

from sss_auto.regions import first_axis_extents, label_components


def test_corner_neighbours_join_when_fully_connected_only():
    mask = np.zeros((3, 4, 4), bool)
    mask[0, 0, 0] = mask[1, 1, 1] = True  # touch at a corner only
    mask[2, 3, 3] = True  # far away
    assert label_components(mask)[1] == 2
    assert label_components(mask, fully_connected=False)[1] == 3
    plane = np.array([[1, 0], [0, 1]], bool)
    assert label_components(plane)[1] == 1 and label_components(plane, fully_connected=False)[1] == 2


def test_first_axis_extents_count_the_slices_each_component_spans():
    mask = np.zeros((6, 5, 5), bool)
    mask[1:4, 0, 0] = True  # 3 slices
    mask[5, 4, 4] = True  # 1 slice
    labels, count = label_components(mask)
    assert count == 2 and first_axis_extents(labels) == [3, 1]


def test_same_partition_as_scipy_on_random_blobs():
    mask = ndimage.binary_dilation(np.random.default_rng(0).random((8, 32, 32)) > 0.985, iterations=1)
    ours, count = label_components(mask)
    theirs, expected = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    assert count == expected
    pairs = {(int(a), int(b)) for a, b in zip(ours[mask], theirs[mask])}
    assert len(pairs) == count, "every component of one labelling is exactly one of the other"
