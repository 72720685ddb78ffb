"""Golden checker for the ``sr`` kind: Hummingbird VSR on BGR frames, as the reference video script runs it."""

from __future__ import annotations

from hummingbird.golden import Fixture
from hummingbird.sr import load_hummingbird_sr, reference_enhance, reference_postprocess

NETWORK_KEYS = ("num_feat", "num_block", "num_grow_ch", "scale")


def check_sr(fx: Fixture) -> None:
    """Load ``SR.pth`` (params_ema first, strict), run the reference frame I/O, compare every output."""
    net = load_hummingbird_sr(fx.file(fx.call.get("model_file")))
    expected = fx.config["network_g"]
    built = {"num_feat": net.conv_first.out_channels, "num_block": len(net.body),
             "num_grow_ch": net.body[0].rdb1.conv1.out_channels, "scale": net.scale}
    fx.record("network_g", all(built[k] == expected[k] for k in NETWORK_KEYS),
              f"inferred {built}, config {({k: expected[k] for k in NETWORK_KEYS})}")
    fx.record("param_count", sum(p.numel() for p in net.parameters()) == fx.config["param_count"])
    pre_pad = int(fx.call.get("pre_pad", 0))
    result = reference_enhance(net, fx["frames_bgr"], pre_pad=pre_pad)
    got = {"model_input_rgb": result.model_input, "model_output_rgb": result.model_output,
           "out_bgr": result.frames_bgr}
    for name in fx.meta["outputs"]:
        fx.compare(name, got[name])
    stored = reference_postprocess(fx["model_output_rgb"], pre_pad * net.scale)
    fx.compare("out_bgr_from_stored_output", stored, expected=fx["out_bgr"], tolerance={"atol": 0.0, "rtol": 0.0})
