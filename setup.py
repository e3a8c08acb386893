from setuptools import find_packages, setup

setup(
    name="sss-auto",
    version="0.1.0",
    description="Self-configuring semi-supervised medical image segmentation with SAM-2 (SSS)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["sss_auto", "sss_auto.*", "planners", "planners.*", "preprocessing", "preprocessing.*"]),
    package_data={"sss_auto.report": ["ssl_benchmark_headline.json"]},
    install_requires=[
        "torch>=2.5.1",
        "sam2",
        "SimpleITK",
        "batchgenerators",
        "scikit-image",
        "numpy",
        "scipy",
        "tqdm",
        "matplotlib",
    ],
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "sss_plan_and_preprocess=sss_auto.cli.plan_and_preprocess:main",
            "sss_extract_fingerprint=sss_auto.cli.plan_and_preprocess:extract_fingerprint_main",
            "sss_plan=sss_auto.cli.plan_and_preprocess:plan_main",
            "sss_preprocess=sss_auto.cli.plan_and_preprocess:preprocess_main",
            "sss_make_demo=sss_auto.cli.make_demo:main",
            "sss_train=sss_auto.cli.train:main",
            "sss_predict=sss_auto.cli.predict:main",
            "sss_evaluate=sss_auto.cli.evaluate:evaluate_main",
            "sss_summarize=sss_auto.cli.evaluate:summarize_main",
            "sss_find_best_configuration=sss_auto.cli.find_best:main",
            "sss_ensemble=sss_auto.cli.ensemble:main",
            "sss_report=sss_auto.cli.report:main",
            "sss_download_sam2=sss_auto.cli.download_sam2:main",
            "sss_demo=sss_auto.cli.demo:main",
            "sss_convert_bhsd=sss_auto.cli.convert:bhsd_main",
            "sss_convert_acdc=sss_auto.cli.convert:acdc_main",
        ]
    },
)
