from eascomfy.cli.app import main

main()
