from zoo.cli.commands import main

main()
