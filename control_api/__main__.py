from control_api.server import main

main()
