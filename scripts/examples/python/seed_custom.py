import queue # 필수
import threading # 필수

def custom(queue_instance:queue.Queue, DATA:bytes):
  print(f"Analysis -> {DATA}")
  
  queue_instance.put({"custom_res":DATA}) # 완료, 필수 ( 반환 꼭 해야지 )
  return 

# 기본 구조
def Start_Analysis(queue_instance:queue.Queue, DATA:bytes): # 필수 
    thread = threading.Thread(target=custom, args=(queue_instance, DATA)) # 필수
    thread.start() # 필수 
    
    return queue_instance # 필수
