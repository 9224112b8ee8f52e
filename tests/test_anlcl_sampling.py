"""Non-local sampling: vectorised top-k equals a brute-force search, chunking changes nothing, draws are shardable."""
import pytest
import torch

from anlcl_lite.sampling import (StepRandom, gather_locations, nearest, nearest_bruteforce, patch_descriptors)


@pytest.mark.parametrize("largest", [False, True])
@pytest.mark.parametrize("radius", [None, 0, 1])
def test_topk_returns_the_true_nearest_patches(largest, radius):
    g = torch.Generator().manual_seed(0)
    h, w = 5, 6
    cand = torch.rand(2, h * w, 4, generator=g)
    q_idx = torch.tensor([[0, 7, 29], [14, 3, 22]])
    query = gather_locations(cand, q_idx)
    kwargs = {} if radius is None else {"q_idx": q_idx, "width": w, "radius": radius}
    fast = nearest(query, cand, 5, largest=largest, **kwargs)
    slow = nearest_bruteforce(query, cand, 5, largest=largest, **kwargs)
    assert torch.equal(fast, slow)
    if radius is None and not largest:
        assert torch.equal(fast[..., 0], q_idx)  # without exclusion a patch is its own nearest neighbour
    if radius is not None:
        qy, qx = (q_idx // w).unsqueeze(-1), (q_idx % w).unsqueeze(-1)
        far = ((fast // w - qy).abs() > radius) | ((fast % w - qx).abs() > radius)
        assert bool(far.all())


def test_chunking_bounds_memory_without_changing_the_result():
    g = torch.Generator().manual_seed(1)
    cand = torch.rand(2, 400, 27, generator=g)
    q_idx = torch.randint(400, (2, 50), generator=g)
    query = gather_locations(cand, q_idx)
    whole = nearest(query, cand, 8, q_idx=q_idx, width=20, radius=1)
    chunked = nearest(query, cand, 8, q_idx=q_idx, width=20, radius=1, max_elements=2 * 400 * 3)  # 3 queries a chunk
    assert torch.equal(whole, chunked)


def test_256_crop_full_resolution_search_runs_in_bounded_chunks():
    # 65,536 locations, 256 queries: unchunked that is a 64 MB distance matrix per image; chunked it is ≤ 16 MB
    img = torch.rand(1, 3, 256, 256)
    desc = patch_descriptors(img, (256, 256))
    q_idx = torch.arange(0, 65536, 256).view(1, 256)
    idx = nearest(gather_locations(desc, q_idx), desc, 8, q_idx=q_idx, width=256, radius=1, max_elements=1 << 22)
    assert idx.shape == (1, 256, 8)
    d_found = (gather_locations(desc, idx) - gather_locations(desc, q_idx).unsqueeze(2)).pow(2).sum(-1)
    j = 37  # spot-check one query against every candidate
    d_all = (desc[0] - desc[0, q_idx[0, j]]).pow(2).sum(-1)
    y, x = divmod(int(q_idx[0, j]), 256)
    d_all.view(256, 256)[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = float("inf")
    assert torch.allclose(d_found[0, j], d_all.topk(8, largest=False).values, atol=1e-5)


def test_patch_descriptors_are_the_pixels_around_each_location():
    img = torch.arange(2 * 4 * 5, dtype=torch.float32).view(1, 2, 4, 5)
    desc = patch_descriptors(img, (4, 5), patch=3)
    assert desc.shape == (1, 20, 18)
    y, x = 2, 3
    expected = img[0, :, y - 1:y + 2, x - 1:x + 2].reshape(-1)
    assert torch.equal(desc[0, y * 5 + x], expected)
    # at a coarser grid the image is area-averaged first
    coarse = patch_descriptors(img, (2, 5), patch=1)
    assert torch.allclose(coarse[0, 0], (img[0, :, 0, 0] + img[0, :, 1, 0]) / 2)


def test_too_few_locations_is_a_clear_error():
    cand = torch.rand(1, 9, 3)
    with pytest.raises(ValueError, match="cannot pick"):
        nearest(cand[:, :1], cand, 2, q_idx=torch.tensor([[4]]), width=3, radius=1)


def test_step_random_shards_the_global_batch():
    whole = StepRandom(5, 11, global_batch=4)
    parts = [StepRandom(5, 11, global_batch=4, offset=o, batch=2) for o in (0, 2)]
    a = whole.randint(100, (6,))
    b = torch.cat([p.randint(100, (6,)) for p in parts])
    assert torch.equal(a, b)
    c = whole.choice(50, 10)
    d = torch.cat([p.choice(50, 10) for p in parts])
    assert torch.equal(c, d)
    assert all(len(set(row.tolist())) == 10 for row in c)
    assert not torch.equal(StepRandom(5, 12, 4).randint(100, (6,)), a)
