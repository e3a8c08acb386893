import numpy as np

from sss_auto.data.appearance import Appearance, AppearanceBank, appearance_bank, lend_appearance, measure_appearance


def _case(level: float, noise: float, seed: int = 0) -> np.ndarray:
    """(1, Z, Y, X): a clipped floor around a square of tissue at `level` with Gaussian noise."""
    rng = np.random.default_rng(seed)
    data = np.full((1, 6, 64, 64), -2.0, np.float32)
    data[:, :, 8:56, 8:56] = level + rng.normal(0, noise, (1, 6, 48, 48))
    return data


def _appearance(level: float, noise: float) -> Appearance:
    return Appearance(*(np.asarray([v], np.float32) for v in (level, noise, -2.0, 5.0)))


def test_level_and_noise_are_measured_from_the_voxels_above_the_floor():
    measured = measure_appearance(_case(0.4, 0.1))
    assert abs(measured.level[0] - 0.4) < 0.01
    assert abs(measured.noise[0] - 0.1) < 0.01
    assert measured.floor[0] == -2.0 and measured.ceiling[0] > 0.4


def test_a_slice_takes_the_donors_level_and_the_missing_noise_and_the_floor_stays():
    image = _case(0.0, 0.05)[:, 0]
    rng = np.random.default_rng(1)
    lent = lend_appearance(image, _appearance(0.0, 0.05), _appearance(0.5, 0.05), rng)
    inside = image[0] > -2.0
    np.testing.assert_allclose(lent[0][inside], image[0][inside] + 0.5, atol=1e-6)  # same noise: a pure shift
    assert (lent[0][~inside] == -2.0).all()
    noisier = lend_appearance(image, _appearance(0.0, 0.05), _appearance(0.0, 0.13), rng)
    added = (noisier - image)[0][inside]
    assert abs(added.std() - np.sqrt(0.13 ** 2 - 0.05 ** 2)) < 0.01 and abs(added.mean()) < 0.01
    quieter = lend_appearance(image, _appearance(0.0, 0.13), _appearance(0.0, 0.05), rng)
    np.testing.assert_array_equal(quieter, image)  # noise is never removed, and no level change here
    clipped = lend_appearance(image, _appearance(0.0, 0.05), _appearance(-9.0, 0.05), rng)
    assert clipped.min() == -2.0, "values stay within the case's [floor, ceiling]"


def test_the_bank_lends_with_its_probability_reproducibly_and_not_without_donors():
    image = _case(0.0, 0.05)[:, 0]
    cases = {"lab": _appearance(0.0, 0.05), "unl": _appearance(0.3, 0.05)}
    always = AppearanceBank(cases, ("unl",), probability=1.0)
    lent = always.lend("lab", image, np.random.default_rng(3))
    np.testing.assert_array_equal(lent, always.lend("lab", image, np.random.default_rng(3)))
    assert abs((lent - image)[0][image[0] > -2.0].mean() - 0.3) < 1e-5
    assert AppearanceBank(cases, ("unl",), probability=0.0).lend("lab", image, np.random.default_rng(3)) is image
    assert AppearanceBank(cases, ()).lend("lab", image, np.random.default_rng(3)) is image
    draws = [AppearanceBank(cases, ("unl",)).lend("lab", image, rng) is image
             for rng in (np.random.default_rng(s) for s in range(200))]
    assert 70 < sum(draws) < 130, "about half the slices keep their own appearance"


def test_labeled_windows_borrow_the_unlabeled_appearance_from_a_real_cache(cache_folder):
    from sss_auto.data.cache import CaseCache
    from sss_auto.data.loader import LoaderSpec, labelled_windows

    cache = CaseCache(cache_folder)
    labeled, unlabeled = cache.ids("labeled"), cache.ids("unlabeled")
    bank = appearance_bank(cache, labeled, unlabeled)
    assert set(bank.cases) == set(labeled) | set(unlabeled) and bank.donors == tuple(unlabeled)
    # every donor one level above every labeled case, no noise to add: a pure shift by 1
    shifted = AppearanceBank({k: Appearance(np.full_like(v.level, 1.0 if k in unlabeled else 0.0), v.noise * 0,
                                            v.floor, v.ceiling) for k, v in bank.cases.items()}, bank.donors, 1.0)
    spec = LoaderSpec(cache_folder=cache_folder, labeled_ids=tuple(labeled), unlabeled_ids=(), patch=32,
                      batch_labeled=6, batch_unlabeled=0, num_foreground=3)
    plain, _ = labelled_windows(spec, cache, np.random.default_rng(0), spec.labeled_ids, 6)
    borrowed_spec = LoaderSpec(**{**spec.__dict__, "appearance": shifted})
    borrowed, labels = labelled_windows(borrowed_spec, cache, np.random.default_rng(0), spec.labeled_ids, 6)
    again, labels_again = labelled_windows(borrowed_spec, cache, np.random.default_rng(0), spec.labeled_ids, 6)
    np.testing.assert_array_equal(borrowed, again)
    np.testing.assert_array_equal(labels, labels_again)
    moved = borrowed != plain
    assert moved.mean() > 0.05, "the tissue of the windows moved"
    shift = (borrowed - plain)[moved]
    assert (shift > 0).all() and (shift <= 1.0 + 1e-5).all(), "up by the donors' level difference, at most"
    assert np.median(shift) > 0.9, "the ceiling clips only a few"
