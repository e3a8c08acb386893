"""The SAM-2 variants sss-auto knows (kept free of torch so planning files load fast in workers)."""

# variant -> (sam2 config, official checkpoint file name of the 2.1 release)
VARIANTS: dict[str, tuple[str, str]] = {
    "test": ("configs/sam2.1/sam2.1_hiera_t.yaml", ""),
    "tiny": ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
    "small": ("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
    "base_plus": ("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt"),
    "large": ("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
}
