"""The numpy encoder prefix the default emotion head reads: same arithmetic as transformers."""

from __future__ import annotations

import numpy as np
import pytest

from emotivoice.emotion.head import EmotionHead, own_log_mel
from emotivoice.models.encoder_prefix import _int8_rows, load_encoder_prefix
from emotivoice.transcription import EncodedSegment

SR = 16000


def test_prefix_equals_the_transformers_encoder_on_own_frames(jfk_samples: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    from emotivoice.models.ct2_reader import read_ct2_model
    from emotivoice.models.registry import resolve_whisper_model
    from emotivoice.models.torch_whisper import encoder_from_ct2_variables
    from emotivoice.training.states import encoder_taps

    variables = read_ct2_model(resolve_whisper_model("base")).variables
    rounded = {  # the rounding the prefix (and the recipe's packed encoder) applies
        k: _int8_rows(np.asarray(v, np.float32)) if np.ndim(v) == 2 and k.endswith("/weight") else v
        for k, v in variables.items()
        if k.startswith("encoder/")
    }
    encoder = encoder_from_ct2_variables(rounded)
    mel = own_log_mel(jfk_samples[: 6 * SR])
    with torch.no_grad():
        expected = encoder_taps(encoder, torch.from_numpy(mel))
    out = load_encoder_prefix("base", 3)(mel)
    assert len(out.layers) == 4 and len(out.attention) == 3
    for n in range(4):
        assert out.layers[n].shape == (1, 300, 512)
        np.testing.assert_allclose(out.layers[n], expected[n].numpy(), atol=5e-4)
    for attention in out.attention:  # mean over heads of row-stochastic maps
        assert attention.shape == (1, 300, 300)
        np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)


def test_own_frames_are_whole_positions_within_one_window(jfk_samples: np.ndarray) -> None:
    long = np.tile(jfk_samples, 3)[: 31 * SR]
    mel = own_log_mel(long)
    assert mel.shape == (1, 80, 3000)  # never past the encoder's 1500 positions
    assert own_log_mel(jfk_samples[:SR]).shape[-1] % 2 == 0
    features = np.zeros((80, 7))
    assert EncodedSegment.own_frames(features, 1).shape == (80, 2)  # at least one position


def test_default_head_reads_layer_four_and_scores_any_length(jfk_samples: np.ndarray) -> None:
    head = EmotionHead.load()
    assert head.prefix_layers == (4,)
    for seconds in (0.3, 2.0, 12.0):
        states = head.prefix_states(own_log_mel(jfk_samples[: int(seconds * SR)]))
        p = head.probabilities(states[0])
        assert p.shape == (6,) and abs(p.sum() - 1) < 1e-6 and (p > 0).all()
    # batching coalitions of one length gives the same states as one at a time
    waves = [jfk_samples[: 3 * SR], jfk_samples[SR : 4 * SR]]
    batch = head.prefix_states(np.concatenate([own_log_mel(w) for w in waves]))
    for i, w in enumerate(waves):
        np.testing.assert_allclose(batch[i], head.prefix_states(own_log_mel(w))[0], atol=1e-4)


def test_fine_tuned_head_runs_the_same_in_numpy_as_in_torch(jfk_samples: np.ndarray) -> None:
    """A head with LoRA adapters and tuned norms on its prefix: the numpy runtime (updates merged
    into the weights) gives the logits of the PyTorch module it was trained as, and a padded
    batch in PyTorch gives each segment what it gets alone."""
    torch = pytest.importorskip("torch")
    from dataclasses import asdict

    from emotivoice.emotion.torch_head import encoder_variables, head_module
    from emotivoice.training.config import TrainConfig
    from emotivoice.training.fit import export_head

    config = TrainConfig(adapter_rank=4, adapter_alpha=8.0)
    module = head_module(512, config.architecture, encoder_variables("base")).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            scale = 0.2 if name.startswith("prefix.") else 0.05
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
        module.standardise.running_var.uniform_(0.5, 2, generator=generator)
    arrays = export_head(module, 1.1, {"config": asdict(config), "whisper_model": "base"})
    assert not any(k.endswith(("qkv.weight", "conv1_weight", "positions")) for k in arrays)
    head = EmotionHead(arrays, "tuned")
    layers = max(head.prefix_layers)
    assert len(head.adapter_deltas) == layers * (4 + 4)  # 4 linear updates, 4 norm arrays a layer
    waves = [jfk_samples[: 3 * SR], jfk_samples[2 * SR : 3 * SR + 4000]]
    mels = [own_log_mel(w)[0].T for w in waves]  # (frames, n_mels), what the recipe trains on
    frames = max(len(m) for m in mels)
    x = torch.zeros(len(mels), frames, 80)
    mask = torch.zeros(len(mels), frames, dtype=torch.bool)
    for i, m in enumerate(mels):
        x[i, : len(m)], mask[i, : len(m)] = torch.from_numpy(m), True
    with torch.no_grad():
        batched = module(x, mask).numpy()
    frozen = load_encoder_prefix("base", layers)(own_log_mel(waves[0])).layers[layers][0]
    for i, w in enumerate(waves):
        states = head.prefix_states(own_log_mel(w))[0]
        # float32 rounding through four layers grows with the logits, which these random
        # weights make large (up to about 130): 5e-3 absolute plus 0.1 % of the logit. The
        # summation order moves with the BLAS threads of the session (8e-3 on a logit of 23
        # was seen in a full run); a wrong layer would be off by whole units.
        np.testing.assert_allclose(head.logits(states), batched[i], rtol=1e-3, atol=5e-3)
    assert np.abs(head.prefix_states(own_log_mel(waves[0]))[0] - frozen).max() > 0.1


def test_soup_averages_members_updates_exactly() -> None:
    """A weight-averaged soup of fine-tuned heads: its merged LoRA update is the members' mean
    update, not the product of mean factors, and every other array is the members' mean."""
    torch = pytest.importorskip("torch")
    from dataclasses import asdict

    from emotivoice.emotion.torch_head import encoder_variables, head_module
    from emotivoice.training.config import TrainConfig
    from emotivoice.training.fit import export_head, soup_arrays

    config = TrainConfig(adapter_rank=4, adapter_alpha=8.0, tap="prefix2")
    metadata = {"config": asdict(config), "whisper_model": "base"}
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        module = head_module(512, config.architecture, encoder_variables("base")).eval()
        with torch.no_grad():
            for parameter in module.parameters():
                if parameter.requires_grad:
                    parameter.add_(torch.randn(parameter.shape) * 0.1)
        members.append(export_head(module, 1.0, metadata))
    heads = [EmotionHead(m) for m in members]
    soup = EmotionHead(soup_arrays(members))
    deltas = soup.adapter_deltas
    assert deltas.keys() == heads[0].adapter_deltas.keys()
    for key, update in deltas.items():
        mean = np.mean([h.adapter_deltas[key] for h in heads], axis=0)
        np.testing.assert_allclose(update, mean, atol=1e-6)
    assert soup.weights["prefix.layers.1.fc1.a"].shape[0] == 3 * 4  # stacked, rank 3·r
    np.testing.assert_allclose(
        soup.weights["out.weight"], np.mean([h.weights["out.weight"] for h in heads], axis=0)
    )
    # a product of averaged factors would not be the mean update
    a = np.mean([h.weights["prefix.layers.1.fc1.a"] for h in heads], axis=0)
    b = np.mean([h.weights["prefix.layers.1.fc1.b"] for h in heads], axis=0)
    naive = b @ a * (8.0 / 4)
    assert np.abs(naive - deltas["encoder/layer_1/ffn/linear_0/weight"]).max() > 1e-3


def test_soup_fit_runs_as_its_arrays_in_numpy(jfk_samples: np.ndarray) -> None:
    """``fit_head`` with ``soup=2`` fine-tunes two members of one initialisation and loads their
    weight average into a rank-2r module, whose logits are the numpy runtime's on the soup."""
    pytest.importorskip("torch")
    from dataclasses import asdict, replace

    from emotivoice.emotion.torch_head import encoder_variables
    from emotivoice.training.config import TrainConfig
    from emotivoice.training.fit import (
        export_head,
        fit_head,
        predict_logits,
        soup_arrays,
        train_head,
    )
    from emotivoice.training.states import StateSet

    waves = [jfk_samples[i * SR // 2 : i * SR // 2 + SR] for i in range(12)]
    mels = [own_log_mel(w)[0].T.astype(np.float16) for w in waves]  # (frames, n_mels)
    labels = np.arange(12) % 6
    data = StateSet(
        mels,
        labels,
        np.array([f"ravdess-{i % 3}" for i in range(12)]),
        np.full(12, "ravdess"),
        np.zeros(12, bool),
        encoder_variables("base"),
    )
    config = TrainConfig(tap="prefix2", adapter_rank=2, epochs=2, batch_size=4, soup=2, min_steps=0)
    members = [train_head(data, replace(config, member=k)) for k in range(2)]
    soup = fit_head(data, config)
    arrays = export_head(soup, 1.0, {"config": asdict(config), "whisper_model": "base"})
    expected = soup_arrays([export_head(m, 1.0, {}) for m in members])
    for key in ("prefix.layers.1.fc1.a", "prefix.layers.1.fc1.b", "out.weight"):
        np.testing.assert_allclose(arrays[key], expected[key], atol=1e-6)
    assert not np.allclose(
        export_head(members[0], 1.0, {})["out.weight"],
        export_head(members[1], 1.0, {})["out.weight"],
    )
    head = EmotionHead(arrays, "soup")
    runtime = np.stack([head.logits(head.prefix_states(own_log_mel(w))[0]) for w in waves[:3]])
    np.testing.assert_allclose(runtime, predict_logits(soup, mels[:3]), atol=2e-3)


def test_adapted_prefix_is_cached_exactly(
    jfk_samples: np.ndarray, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the shipped head's prefix (int8 rounding + LoRA updates) is kept on disk for cold starts;
    # the copy read back must be the very prefix built from model.bin
    from emotivoice.models.encoder_prefix import adapted_encoder_prefix
    from emotivoice.models.registry import cache_dir

    head = EmotionHead.load()
    mel = own_log_mel(jfk_samples[: 3 * SR])
    layers = max(head.prefix_layers)
    expected = head.prefix_output(mel).layers[layers]  # what the pipeline's head computes
    model_dir = cache_dir() / "whisper-base-ct2"  # the joined model; the new cache stays empty
    monkeypatch.setenv("EMOTIVOICE_CACHE_DIR", str(tmp_path))
    adapters = {k: v for k, v in head.weights.items() if k.startswith("prefix.layers.")}
    alpha = float(head.config["adapter_alpha"])
    built = adapted_encoder_prefix(str(model_dir), layers, adapters, alpha)
    (saved,) = tmp_path.glob("prefix-*.npz")
    read = adapted_encoder_prefix(str(model_dir), layers, adapters, alpha)
    np.testing.assert_array_equal(read(mel).layers[layers], built(mel).layers[layers])
    np.testing.assert_array_equal(read(mel).layers[layers], expected)
    saved.write_bytes(b"not a numpy file")  # a damaged cache is rebuilt, not an error
    rebuilt = adapted_encoder_prefix(str(model_dir), layers, adapters, alpha)
    np.testing.assert_array_equal(rebuilt(mel).layers[layers], built(mel).layers[layers])
    other = adapted_encoder_prefix(str(model_dir), layers, adapters, alpha * 2)
    assert len(list(tmp_path.glob("prefix-*.npz"))) == 2  # another head, another file
    assert not np.array_equal(other(mel).layers[layers], built(mel).layers[layers])
