"""A tiny wav2vec 2.0 / HuBERT architecture for tests that make weights in the upstream layout
(torchaudio's ``wav2vec2_model`` keyword arguments; a few hundred KB of random weights)."""

TINY_WAV2VEC2 = dict(
    extractor_mode="group_norm", extractor_conv_layer_config=[[16, 10, 5]] + [[16, 3, 2]] * 4 + [[16, 2, 2]] * 2,
    extractor_conv_bias=False, encoder_embed_dim=32, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=16,
    encoder_pos_conv_groups=4, encoder_num_layers=2, encoder_num_heads=2, encoder_attention_dropout=0.0,
    encoder_ff_interm_features=64, encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
    encoder_layer_norm_first=False, encoder_layer_drop=0.0,
)
