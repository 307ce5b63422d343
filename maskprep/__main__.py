from maskprep.cli import main

main()
