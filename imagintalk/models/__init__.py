"""The ImaginTalk model (DESIGN.md §4): one module per part, typed presets, trainable stages.

Parts: ``lip_aligner`` (mouth crops → units), ``unit_bert`` (masked LM over units),
``error_detector`` (flag + lip-conditioned re-prediction → c_lip), ``face_style`` (c_id, c_emo),
``style_dit`` (masked discrete diffusion over codec levels), ``codec_decoder`` and ``vocoder``
(tokens → mel → waveform); ``imagintalk.ImaginTalk`` ties them together for inference and
``stages.build_stage`` gives the training room each stage with its ``loss(batch)``.
"""

from imagintalk.models.config import PRESETS, ModelConfig, model_config
from imagintalk.models.imagintalk import GenerateOutput, ImaginTalk, count_parameters
from imagintalk.models.stages import STAGES, build_stage

__all__ = ["PRESETS", "STAGES", "GenerateOutput", "ImaginTalk", "ModelConfig", "build_stage", "count_parameters",
           "model_config"]
