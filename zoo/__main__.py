from zoo.commands import main

main()
