from setuptools import find_packages, setup

from spine import __version__

with open("requirements.txt") as f:
	install_requires = [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]

setup(
	name="spine",
	version=__version__,
	description="Connects Frappe and ERPNext sites through Apache Kafka",
	author="Spine contributors",
	license="MIT",
	packages=find_packages(exclude=["tests", "tests.*", "benchmarks"]),
	zip_safe=False,
	include_package_data=True,
	python_requires=">=3.10",
	install_requires=install_requires,
	extras_require={"devbroker": ["noida-db==0.2.3"]},
)
