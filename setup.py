"""Ships the top-level `resources/` inside the wheel as `fewshot_gui/resources`.

Everything else about the build lives in pyproject.toml; pyproject alone cannot map a folder
outside the package into it while also finding the packages.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["fewshot_gui", "fewshot_gui.*"]), "fewshot_gui.resources"],
    package_dir={"fewshot_gui.resources": "resources"},
    package_data={"fewshot_gui.resources": ["**/*"]},
    include_package_data=False,
)
