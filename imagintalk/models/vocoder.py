"""Mel → waveform: Griffin-Lim (zero training, the data side's) and a small Vocos-style neural vocoder.

The neural vocoder (Siuzdenko et al. 2023, "Vocos") keeps the 100 Hz frame rate throughout: a
ConvNeXt stack over mel frames predicts a log-magnitude and a phase per STFT bin, and an inverse
STFT (n_fft 640, hop 160) makes the waveform. No upsampling convolutions, so it is fast on CPU.
Losses: multi-resolution STFT (spectral convergence + log-magnitude L1) and mel L1, plus, when
``adversarial``, HiFi-GAN's multi-period discriminator with least-squares and feature-matching
losses. The discriminator's loss is folded into the same ``loss(batch)`` with the generator's
gradient blocked from it (and vice versa), so one optimizer over all parameters trains the GAN
correctly and a generic trainer needs no GAN-specific loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor, nn
from torch.func import functional_call

from imagintalk.features.audio import griffin_lim
from imagintalk.models.batch import Batch, frame_mask
from imagintalk.models.config import ModelConfig, VocabConfig
from imagintalk.models.layers import zero_padding


class LogMel(nn.Module):
    """Differentiable log-mel with exactly the data side's framing (imagintalk.features.audio):
    reflect-pad (n_fft − hop)/2 per side, no torch centring, so N·hop samples give N frames and
    frame i is centred on the middle of its own hop."""

    def __init__(self, vocab: VocabConfig):
        super().__init__()
        self.floor, self.hop = vocab.log_floor, vocab.hop_length
        self.pad = (vocab.n_fft - vocab.hop_length) // 2
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=vocab.sample_rate, n_fft=vocab.n_fft, win_length=vocab.win_length,
            hop_length=vocab.hop_length, f_min=vocab.f_min, f_max=vocab.f_max, n_mels=vocab.n_mels,
            power=vocab.mel_power, center=False,
        )

    def forward(self, wave: Tensor) -> Tensor:
        n = wave.shape[-1] // self.hop
        x = F.pad(wave[..., : n * self.hop].unsqueeze(-2), (self.pad, self.pad), mode="reflect").squeeze(-2)
        return torch.log(self.mel(x)[..., :n].clamp_min(self.floor))


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate: int, kernel: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1, self.pw2 = nn.Linear(dim, intermediate), nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # x: B×F×C
        y = self.dwconv(zero_padding(x, mask).transpose(1, 2)).transpose(1, 2)
        return x + self.gamma * self.pw2(F.gelu(self.pw1(self.norm(y))))


def _istft_per_sample(spec: Tensor, lengths: Tensor, vocab: VocabConfig, window: Tensor) -> Tensor:
    """Inverse STFT of each sample over its own frames only (so padding never reaches the
    overlap-add of its last valid frames) → B×S padded waveforms.

    torch's centred ISTFT puts frame i at sample hop·i; the data side's frame i sits at
    hop·i + hop/2, so the waveform is delayed by hop/2 to line up with the mel it came from.
    """
    hop = vocab.hop_length
    shift = hop // 2
    kw = dict(n_fft=vocab.n_fft, hop_length=hop, win_length=vocab.win_length, window=window, center=True)
    if bool((lengths == spec.shape[-1]).all()):
        n = spec.shape[-1] * hop
        return F.pad(torch.istft(spec, length=n, **kw), (shift, 0))[:, :n]
    out = spec.real.new_zeros(spec.shape[0], spec.shape[-1] * hop)
    for i, n in enumerate(lengths.tolist()):
        out[i, shift: n * hop] = torch.istft(spec[i, :, :n], length=n * hop, **kw)[: n * hop - shift]
    return out


def mel_lengths(batch: Batch, vocab: VocabConfig) -> Tensor:
    return frame_mask(batch).sum(dim=1) * vocab.mels_per_frame


class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN MPD: the waveform folded into 2-D by each period, strided convs over time."""

    def __init__(self, periods: tuple[int, ...], channels: int):
        super().__init__()
        self.periods = periods
        self.discs = nn.ModuleList()
        for _ in periods:
            chans = [1, channels, 2 * channels, 4 * channels, 4 * channels]
            convs = [nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3 if i < 3 else 1, 1), (2, 0)) for i in range(4)]
            self.discs.append(nn.ModuleList([*convs, nn.Conv2d(chans[-1], 1, (3, 1), 1, (1, 0))]))

    def forward(self, wave: Tensor) -> list[tuple[Tensor, list[Tensor]]]:
        outs = []
        for p, convs in zip(self.periods, self.discs, strict=True):
            x = wave[:, None]
            x = F.pad(x, (0, (-x.shape[-1]) % p), mode="reflect")
            x = x.view(x.shape[0], 1, -1, p)
            feats = []
            for conv in convs[:-1]:
                x = F.leaky_relu(conv(x), 0.1)
                feats.append(x)
            outs.append((convs[-1](x).flatten(1), feats))
        return outs


class NeuralVocoder(nn.Module):
    """Vocos-style vocoder: ``forward(mel, lengths)`` → (waveforms B×S, lengths in samples)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.vocab, self.cfg = cfg.vocab, cfg.vocoder
        v, c = self.vocab, self.cfg
        self.embed = nn.Conv1d(v.n_mels, c.dim, c.kernel, padding=c.kernel // 2)
        self.norm = nn.LayerNorm(c.dim)
        self.blocks = nn.ModuleList(ConvNeXtBlock(c.dim, c.intermediate, c.kernel, 1.0 / c.layers)
                                    for _ in range(c.layers))
        self.final_norm = nn.LayerNorm(c.dim)
        self.out = nn.Linear(c.dim, v.n_fft + 2)
        self.register_buffer("window", torch.hann_window(v.win_length), persistent=False)
        self.log_mel = LogMel(v)
        self.discriminator = MultiPeriodDiscriminator(c.disc_periods, c.disc_channels) if c.adversarial else None

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``mel`` B×80×F log-mel at 100 Hz, ``lengths`` valid frames per sample (default all)."""
        b, _, f = mel.shape
        if lengths is None:
            lengths = torch.full((b,), f, device=mel.device)
        mask = torch.arange(f, device=mel.device)[None] < lengths[:, None]
        x = self.embed(mel.float() * mask[:, None]).transpose(1, 2)
        x = self.norm(x)
        for blk in self.blocks:
            x = blk(x, mask)
        logmag, phase = self.out(self.final_norm(x)).transpose(1, 2).chunk(2, dim=1)
        mag = torch.exp(logmag).clamp(max=1e2)  # Vocos: bound the magnitude against early blow-ups
        spec = torch.polar(mag, phase)
        return _istft_per_sample(spec, lengths, self.vocab, self.window), lengths * self.vocab.hop_length

    # -- training ------------------------------------------------------------------------------
    def _crop(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Random equal-length training segments (mel, audio) inside each sample's valid region."""
        v = self.vocab
        n = mel_lengths(batch, v)
        seg = int(min(self.cfg.segment_frames, int(n.min())))
        starts = (torch.rand(n.shape, device=n.device) * (n - seg + 1).float()).long()
        idx = starts[:, None] + torch.arange(seg, device=n.device)[None]
        mel = batch["mel"].float().gather(2, idx[:, None, :].expand(-1, batch["mel"].shape[1], -1))
        widx = (starts * v.hop_length)[:, None] + torch.arange(seg * v.hop_length, device=n.device)[None]
        return mel, batch["audio"].float().gather(1, widx)

    def stft_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        total = pred.new_zeros(())
        for n_fft, hop, win in self.cfg.stft_resolutions:
            w = torch.hann_window(win, device=pred.device)
            sp, st = (torch.stft(x, n_fft, hop, win, w, return_complex=True).abs().clamp_min(1e-7)
                      for x in (pred, target))
            sc = torch.linalg.norm(st - sp) / torch.linalg.norm(st).clamp_min(1e-7)
            total = total + sc + F.l1_loss(torch.log(sp), torch.log(st))
        return total / len(self.cfg.stft_resolutions)

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """STFT + mel reconstruction (+ adversarial, feature matching and the discriminator's own
        loss when ``adversarial``) on random segments of the batch."""
        c = self.cfg
        mel, target = self._crop(batch)
        pred, _ = self(mel)
        mel_l1 = F.l1_loss(self.log_mel(pred), self.log_mel(target))
        stft = self.stft_loss(pred, target)
        loss = c.mel_weight * mel_l1 + c.stft_weight * stft
        metrics = {"mel_l1": float(mel_l1.detach()), "stft": float(stft.detach())}
        if self.discriminator is not None:
            frozen = {k: p.detach() for k, p in self.discriminator.named_parameters()}
            fake_g = functional_call(self.discriminator, frozen, (pred,))  # G step: D's weights fixed
            real_d, fake_d = self.discriminator(target), self.discriminator(pred.detach())  # D step
            adv = sum(torch.mean((1 - out) ** 2) for out, _ in fake_g)
            fm = sum(F.l1_loss(fg, fr.detach()) for (_, fgs), (_, frs) in zip(fake_g, real_d, strict=True)
                     for fg, fr in zip(fgs, frs, strict=True))
            disc = sum(torch.mean((1 - r) ** 2) + torch.mean(f ** 2)
                       for (r, _), (f, _) in zip(real_d, fake_d, strict=True))
            loss = loss + c.adv_weight * adv + c.fm_weight * fm + disc
            metrics.update(adv=float(adv.detach()), fm=float(fm.detach()), disc=float(disc.detach()))
        metrics["loss"] = float(loss.detach())
        return loss, metrics


class GriffinLimVocoder(nn.Module):
    """Zero-training fallback: the data side's Griffin-Lim (least-squares inverse mel, zero-phase
    start, so deterministic), per clip on the CPU. No parameters, nothing to save."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.vocab = cfg.vocab
        self.audio_cfg = cfg.vocab.audio_config(cfg.vocoder.griffin_lim_iters)

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        b, _, f = mel.shape
        if lengths is None:
            lengths = torch.full((b,), f, device=mel.device)
        hop = self.vocab.hop_length
        out = torch.zeros(b, f * hop)
        mels = mel.detach().float().cpu().numpy()
        for i, n in enumerate(lengths.tolist()):
            out[i, : n * hop] = torch.from_numpy(griffin_lim(mels[i, :, :n], self.audio_cfg))
        return out.to(mel.device), lengths * hop


def build_vocoder(cfg: ModelConfig) -> NeuralVocoder | GriffinLimVocoder:
    return NeuralVocoder(cfg) if cfg.vocoder.kind == "neural" else GriffinLimVocoder(cfg)
