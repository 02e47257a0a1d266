from airgap.cli import main

main(prog_name="airgap")
