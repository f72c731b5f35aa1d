# Copyright (c) OpenMMLab. All rights reserved.
from setuptools import find_packages, setup


def read_version():
    namespace = {}
    with open('mmriformer/version.py') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def parse_requirements(path):
    with open(path) as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith('#')
        ]


setup(
    name='mmriformer',
    version=read_version(),
    description='RIFormer backbones and RT-DETR detectors for MMDetection',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    include_package_data=True,
    # >= 3.10 for zip(strict=True) (mmriformer.testing) and for torch 2.14,
    # which tools/setup_env.sh installs; tested on 3.11, its default.
    python_requires='>=3.10',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3 :: Only',
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
    ],
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'tests': parse_requirements('requirements/tests.txt'),
        'optional': parse_requirements('requirements/optional.txt'),
        'mim': parse_requirements('requirements/mminstall.txt'),
    },
    zip_safe=False)
