"""The PyTorch copy of Whisper agrees with the CTranslate2 runtime it was converted from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotivoice.audio import load_audio
from emotivoice.errors import ModelIntegrityError
from emotivoice.models.ct2_reader import read_ct2_model
from emotivoice.models.registry import resolve_whisper_model

torch = pytest.importorskip("torch")
ctranslate2 = pytest.importorskip("ctranslate2")

from emotivoice.models.torch_whisper import (  # noqa: E402
    TorchWhisper,
    load_torch_whisper,
    torch_model_dir,
)

# encoder states are O(10); float32 kernels differ in summation order only
ENCODER_MAX_ABS = 5e-3
ENCODER_MEAN_ABS = 1e-4


@pytest.fixture(scope="module")
def torch_whisper() -> TorchWhisper:
    return load_torch_whisper("base")


@pytest.fixture(scope="module")
def ct2_float32() -> object:
    return ctranslate2.models.Whisper(str(resolve_whisper_model("base")), compute_type="float32")


def _fast_features(samples: np.ndarray) -> np.ndarray:
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    return pad_or_trim(FeatureExtractor()(samples)).astype(np.float32)


def test_log_mel_matches_fast_runtime(torch_whisper: TorchWhisper, jfk_samples: np.ndarray) -> None:
    ours = torch_whisper.log_mel(torch.from_numpy(jfk_samples))[0].numpy()
    speech_frames = len(jfk_samples) // 160
    reference = _fast_features(jfk_samples)
    assert ours.shape == reference.shape == (80, 3000)
    np.testing.assert_allclose(ours[:, :speech_frames], reference[:, :speech_frames], atol=2e-3)


def test_encoder_states_agree(
    torch_whisper: TorchWhisper, ct2_float32: object, jfk_samples: np.ndarray
) -> None:
    features = _fast_features(jfk_samples)[None]
    fast = np.array(ct2_float32.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
    with torch.no_grad():
        ours = torch_whisper.encode(torch.from_numpy(features)).numpy()
    assert ours.shape == fast.shape == (1, 1500, 512)
    difference = np.abs(ours - fast)
    assert difference.max() < ENCODER_MAX_ABS
    assert difference.mean() < ENCODER_MEAN_ABS


@pytest.mark.slow
def test_greedy_transcripts_equal_ct2_float32(
    torch_whisper: TorchWhisper, ct2_float32: object, data_dir: Path
) -> None:
    clips = [
        data_dir / "speech" / "jfk.flac",
        *sorted((data_dir / "librispeech").glob("*.flac"))[:3],
        *sorted((data_dir / "librivox").glob("*.flac"))[:2],
    ]
    for clip in clips:
        samples = load_audio(clip).samples
        features = ctranslate2.StorageView.from_array(_fast_features(samples)[None])
        fast = ct2_float32.generate(features, [torch_whisper.prompt("en")], beam_size=1)
        with torch.no_grad():
            states = torch_whisper.encode(torch.from_numpy(_fast_features(samples)[None]))
        ours = torch_whisper.greedy_decode(states, "en")
        assert list(ours.tokens) == fast[0].sequences_ids[0], clip.name
    assert "fellow americans" in torch_whisper.transcribe(load_audio(clips[0]).samples).text.lower()


def test_gradients_reach_the_waveform(torch_whisper: TorchWhisper, jfk_samples: np.ndarray) -> None:
    audio = torch.from_numpy(jfk_samples[:32000].copy()).requires_grad_(True)
    prompt = torch.tensor([torch_whisper.prompt("en")])
    logits = torch_whisper.model(
        input_features=torch_whisper.log_mel(audio), decoder_input_ids=prompt
    ).logits
    logits[0, -1].log_softmax(-1)[torch_whisper.tokenizer.token_to_id("And")].backward()
    assert audio.grad is not None
    assert torch.isfinite(audio.grad).all() and audio.grad.abs().sum() > 0


def test_conversion_is_cached(torch_whisper: TorchWhisper) -> None:
    target = torch_model_dir("base")
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    assert torch_model_dir("base") == target
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp


def test_truncated_model_file_is_refused(tmp_path: Path) -> None:
    source = resolve_whisper_model("base") / "model.bin"
    broken = tmp_path / "model.bin"
    with source.open("rb") as full, broken.open("wb") as part:
        part.write(full.read(5_000_000))
    with pytest.raises(ModelIntegrityError, match="truncated or corrupt"):
        read_ct2_model(broken)
    broken.write_bytes(b"not a model at all")
    with pytest.raises(ModelIntegrityError):
        read_ct2_model(broken)


def test_ct2_variables_are_unfused_exactly(torch_whisper: TorchWhisper) -> None:
    variables = read_ct2_model(resolve_whisper_model("base")).variables
    fused = variables["encoder/layer_2/self_attention/linear_0/weight"]
    layer = torch_whisper.model.model.encoder.layers[2].self_attn
    for i, projection in enumerate((layer.q_proj, layer.k_proj, layer.v_proj)):
        np.testing.assert_array_equal(
            projection.weight.detach().numpy(), fused[i * 512 : (i + 1) * 512]
        )
