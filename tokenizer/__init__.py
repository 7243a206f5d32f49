"""3D VQ-GAN video tokenizer: video files ↔ discrete spacetime tokens."""
