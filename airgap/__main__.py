from airgap.cli import run

run()
